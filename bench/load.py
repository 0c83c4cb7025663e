"""The central server under load: requests per second and p99 latency of the hot routes, each
as a ratio to a baseline measured in the same run on the same server.

    .venv/bin/python bench/load.py [--seconds 10] [--connections 16,64] [--rate 1000] [--json]

Starts the web server as scripts/start_web_server.sh does (`--front nginx`, the default where
nginx is installed: nginx before the heartbeat pool's DMARKET_BEAT_WORKERS sync workers and
the web pool's DMARKET_WEB_WORKERS x DMARKET_WEB_THREADS, default 2 and 2 x 4; `--front off`:
the gthread pool alone) on a free port of 127.0.0.1, against a fresh PostgreSQL
database (dmarket_load, on DATABASE_URL's server), seeds it (a user with 50 jobs and 200 ledger
rows, 1,000 machines of another user) and drives it with wrk (Debian's package; installed
as root when missing), each route for --seconds at each number of connections, three times
interleaved with the other routes, keeping the median. The routes:

- baseline: a bare DRF view with the same token authentication and one UPDATE (bench/load_urls.py,
  never served by the market);
- heartbeat: POST /api/machines/ID/heartbeat/ with the machine's token, ONLINE and unchanged
  (each wrk connection its own machine, as many agents would be), as many as the server
  answers (a closed loop: each connection sends its next request as soon as it has an answer);
- heartbeat_paced: the same at a fixed --rate a second from --rate x 10 machines (1,000 from
  10,000 agents beating every 10 s), each request on a new connection, as an agent's beat is
  (it beats every 10 s or more, past gunicorn's 2 s keep-alive): its p99 is what an agent waits
  at that rate. Before each run each token's last use is set as agents beating all along
  leave them: one beat in six records its token's use (once a minute), throughout the run.
  Each wrk thread sends on a timetable (a Lua `delay` read off the monotonic clock), so a
  slow answer does not slow the requests after it, until every connection waits on one: wrk
  times a request from when it leaves, so a run that falls behind (under 0.98 of the rate,
  flagged) leaves out the late ones' wait for a connection and its p99 is low;
- jobs: GET /api/jobs/ (50 jobs, one page); credits: GET /api/credits/;
  transactions: GET /api/credits/transactions/ (a page of 100, of a user with 100 rows);
  transactions_1m: the same for a user with --ledger-rows rows (1,000,000), alternately the
  newest page and a page half-way down (a cursor), against the 100-row user's throughput.

Before the load, each transactions page is also timed alone (20 sequential requests, median).

Beside requests per second, each route's server CPU per request: the user and system time
gunicorn's processes and PostgreSQL's took during its runs, over the requests served (median
of the repetitions), and its ratio to the baseline's. On a shared machine requests per second
move with idle spells and neighbours (±0.1–0.3 in the ratios from run to run here); CPU per
request hardly does, and it is what decides how many requests a core serves.

The targets of issue 17 are printed beside the figures: heartbeat >= 1,000 req/s and >= 0.5 of
the baseline, and a p99 <= 100 ms at 1,000 a second (heartbeat_paced; the closed loop's p99
at 64 connections is the wait behind 63 others, 64 / throughput on average, whatever the
server's speed); the jobs list and credits >= 0.5 of the baseline; at 1 M
rows a transactions page under 20 ms alone and >= 0.5 of the 100-row user's throughput. Load only
ever goes to 127.0.0.1.
"""

import argparse
import base64
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import free_port, fresh_database  # noqa: E402 - bench/ on the path first

from dmarket.common.front import nginx_binary, nginx_conf_write  # noqa: E402 - no Django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.load_settings")

LUA = """
local tokens = {%s}
local bodies = {%s}
local paths = {%s}
local counter = 0
local period_ms = %s
local threads = %s
local made = 0
setup = function(thread)
  thread:set("thread_id", made)
  made = made + 1
end
init = function(args)
  -- Each thread (a Lua state of its own, its own counter) from its own place in the list, so
  -- that no two send one machine's beat together.
  counter = (thread_id or 0) * math.floor(#tokens / threads)
end
request = function()
  counter = counter + 1
  local i = (counter %% #tokens) + 1
  local headers = {["Authorization"] = "Token " .. tokens[i],
                   ["Content-Type"] = "application/json"}
  if period_ms then headers["Connection"] = "close" end
  return wrk.format(bodies[i] and "POST" or "GET", paths[i], headers, bodies[i])
end
if period_ms then
  -- Paced: this thread's requests leave on a fixed timetable, one every period_ms whatever
  -- the answers' times (a late one leaves at once), so the rate offered is the rate asked
  -- for until the server falls behind; each on a new connection, as an agent's beat is. The
  -- threads' timetables are interleaved. wrk waits whole milliseconds: a request leaves up to
  -- 1 ms early, the timetable stays exact.
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } load_timespec;
    int clock_gettime(int clock, load_timespec *now);
  ]]
  local now = ffi.new("load_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, now)  -- CLOCK_MONOTONIC
    return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
  end
  local slot = nil
  delay = function()
    local t = now_ms()
    slot = (slot or t + (thread_id or 0) * period_ms / threads) + period_ms
    return math.max(0, slot - t)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p99_ms\\": %%f, " ..
    "\\"p50_ms\\": %%f, \\"errors\\": %%d, \\"non2xx\\": %%d}\\n", summary.requests,
    summary.duration / 1e6, latency:percentile(99) / 1000, latency:percentile(50) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status))
end
"""


ROUTES = ("baseline", "heartbeat", "heartbeat_paced", "jobs", "credits", "transactions",
          "transactions_1m")


def wrk_installed():
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (Debian's package)", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                       stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        sys.exit("bench/load.py needs wrk: apt-get install wrk")


def seed_ledger(username, rows):
    """A user with `rows` ledger rows (written by SQL in one statement: the ledger's own
    services would take an hour for a million); returns their token."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from dmarket.accounts.models import ApiToken

    user = get_user_model().objects.create_user(username, f"{username}@example.org",
                                                "a long load password 3")
    _, key = ApiToken.issue(user, name="load")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO credits_ledgerentry (user_id, kind, amount, held, balance_after, "
            "held_after, key, memo, created_at) SELECT %s, 'grant', 0.000001, 0, "
            "g * 0.000001, 0, %s || g, 'load', now() - (%s - g) * interval '1 ms' "
            "FROM generate_series(1, %s) AS g",
            [user.pk, f"load:{username}:", rows, rows])
        # Settled before timing: autovacuum after a million-row insert would load the run.
        cursor.execute("VACUUM ANALYZE credits_ledgerentry")
    return key


def seed(connections, agents):
    """The user, their jobs and ledger rows, the machines (at least `agents`, each with its
    agent's token); returns the user's token and each agent's (token, path, body, token's
    id)."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from dmarket.accounts.models import PREFIX_LENGTH, ApiToken, key_digest
    from dmarket.credits.models import Run
    from dmarket.credits.services import credits_grant
    from dmarket.jobs.models import Job
    from dmarket.machines.models import Machine

    call_command("migrate", verbosity=0)
    User = get_user_model()
    user = User.objects.create_user("loaduser", "l@example.org", "a long load password 1")
    _, key = ApiToken.issue(user, name="load")
    for i in range(150):
        credits_grant(user, Decimal("0.000001"), key=f"load-grant-{i}", memo="load")
    runs = Run.objects.bulk_create([Run(user=user, label=f"job-{i}", max_credits=Decimal("1"))
                                    for i in range(50)])
    Job.objects.bulk_create([
        Job(user=user, run=run, name=f"job-{i}", entry_file="dmarket://a.py@1",
            status=Job.SUCCEEDED, finished_at=timezone.now()) for i, run in enumerate(runs)])
    owner = User.objects.create_user("contributor", "c@example.org", "a long load password 2")
    now = timezone.now()
    machines = Machine.objects.bulk_create([
        Machine(user=owner, name=f"m{i}", cores=4, memory_mb=8192,
                address=f"10.9.{i // 250}.{i % 250}", state=Machine.ONLINE,
                worker_state="ALIVE", last_heartbeat=now)
        for i in range(max(1000, max(connections), agents))])
    # As ApiToken.issue makes them, in one statement for ten thousand.
    keys = [secrets.token_hex(20) for _ in machines[:max(max(connections), agents)]]
    tokens = ApiToken.objects.bulk_create(
        ApiToken(user=owner, name="machine", machine=machine, prefix=k[:PREFIX_LENGTH],
                 digest=key_digest(k)) for machine, k in zip(machines, keys))
    beats = [(k, f"/api/machines/{machine.pk}/heartbeat/", json.dumps({"worker_state": "ALIVE"}),
              token.pk) for machine, k, token in zip(machines, keys, tokens)]
    return key, beats


def tokens_used_as_in_steady_state(beats, rate, threads, interval=10):
    """Each token of `beats` (the paced run's agents) last used as agents beating every
    `interval` seconds all along leave them: when its beat comes in the run, its last use is
    1 to 6 intervals old (its use is recorded once a minute: at the beat after five that did
    not record it), each as likely, so that one beat in six records it, from the run's first
    second to its last. The run's own timetable says when each token's beat comes: thread t's
    j-th request (the Lua script's counter) names beat t * (n // threads) + 1 + j, modulo n,
    and leaves (j + 1) * threads / rate + t / rate seconds after the start."""
    from django.db import connection

    n, share = len(beats), len(beats) // threads
    ids, shifts = [], []
    for q, beat in enumerate(beats):
        t = min(threads - 1, (q - 1) % n // share)
        leaves = ((q - t * share - 1) % n + 1) * threads / rate + t / rate
        ids.append(beat[3])
        # Half a second more, so that a beat leaving a little late still finds its token's
        # age under the minute (the first five ages) or past it (the sixth).
        shifts.append(leaves - interval * random.randint(1, 6) - 0.5)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_apitoken AS k SET last_used_at = now() + v.shift * "
                       "interval '1 second' FROM unnest(%s::bigint[], %s::float8[]) "
                       "AS v(id, shift) WHERE k.id = v.id", [ids, shifts])


def lua_for(requests_, threads, period_ms=None):
    """A wrk script for `threads` threads cycling through (token, path, body or None, ...); with
    `period_ms`, each thread sends one request every period_ms, each on a new connection."""
    quote = lambda s: json.dumps(s)  # noqa: E731 - a JSON string is a Lua string here
    tokens = ", ".join(quote(r[0]) for r in requests_)
    paths = ", ".join(quote(r[1]) for r in requests_)
    bodies = ", ".join(quote(r[2]) if r[2] else "false" for r in requests_)
    return LUA % (tokens, bodies, paths, "nil" if period_ms is None else repr(period_ms),
                  threads)


def server_cpu_seconds(session, since=None):
    """CPU seconds (user + system) used so far by gunicorn's processes (the session it was
    started in) and PostgreSQL's, by process id; with `since` (an earlier reading), the
    seconds used since then. A process that ended in between (an autovacuum worker) is left
    out of both: subtracting its earlier reading alone once turned a route's figure to a
    fraction of its cost."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()  # from field 3 (state) on: proc(5)
        if int(fields[3]) == session or name == "postgres":
            ticks[stat.parent.name] = int(fields[11]) + int(fields[12])
    seconds = {pid: value / os.sysconf("SC_CLK_TCK") for pid, value in ticks.items()}
    if since is None:
        return seconds
    return sum(value - since.get(pid, 0) for pid, value in seconds.items())


def start_server(port, data, front):
    """The web server as scripts/start_central_server.sh starts it, on 127.0.0.1:`port`, in
    its own session (whose processes' CPU is the server's): with the front, nginx before a
    gthread pool and the heartbeats' sync pool, each on a Unix socket under `data`
    (dmarket/common/front.py); without it, the gthread pool alone on the port."""
    gunicorn = [str(ROOT / ".venv" / "bin" / "gunicorn"), "dmarket.wsgi", "--no-control-socket",
                "--logger-class", "dmarket.common.gunicorn_logging.Logger",
                "--access-logfile", str(data / "access.log"),
                "--error-logfile", str(data / "server.log")]
    web = [*gunicorn, "--workers", os.environ.get("DMARKET_WEB_WORKERS", "2"),
           "--worker-class", "gthread", "--threads", os.environ.get("DMARKET_WEB_THREADS", "4"),
           "--timeout", "120", "--bind"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.load_settings"}
    if front == "off":
        return subprocess.Popen([*web, f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                                start_new_session=True)
    conf = data / "nginx.conf"
    nginx_conf_write(conf, listen=f"127.0.0.1:{port}", web_socket=data / "web.sock",
                     beat_socket=data / "beat.sock", run_dir=data,
                     log_file=data / "nginx.log", max_body_mb=1024)
    beat = [*gunicorn, "--workers", os.environ.get("DMARKET_BEAT_WORKERS", "2"),
            "--worker-class", "sync", "--timeout", "30", "--bind", f"unix:{data / 'beat.sock'}"]
    nginx = [nginx_binary(), "-q", "-e", str(data / "nginx.log"),
             "-p", str(data), "-c", str(conf), "-g", "daemon off;"]
    # One shell leads the session and waits on the three; TERM to the group stops them all.
    script = " & ".join(shlex.join(c) for c in
                        ([*web, f"unix:{data / 'web.sock'}"], beat, nginx)) + " & wait"
    return subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, start_new_session=True)


def wrk_threads(connections):
    return min(2, connections)


def run_wrk(url, script, connections, seconds, session=None):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    cpu = server_cpu_seconds(session) if session else None
    try:
        out = subprocess.run(
            ["wrk", "-t", str(wrk_threads(connections)), "-c", str(connections),
             "-d", f"{seconds}s", "--timeout", "5s", "-s", f.name, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        os.unlink(f.name)
    line = next(line for line in out.splitlines() if line.startswith("JSON "))
    result = json.loads(line[5:])
    result["rps"] = result["requests"] / result["seconds"]
    if cpu is not None:
        result["cpu_ms"] = server_cpu_seconds(session, cpu) * 1000 / max(1, result["requests"])
    return result


def host_speed_ms():
    """CPU milliseconds of a fixed pure-Python loop (median of 5): how fast this host is just
    now. The same machine has run it 1.5-2 times slower in some spells than in others, and
    every figure here with it; the ratios to the baseline are what carry across runs."""
    timings = []
    for _ in range(5):
        started = time.process_time()
        sum(i * i for i in range(1_000_000))
        timings.append((time.process_time() - started) * 1000)
    return statistics.median(timings)


def page_alone_ms(url, token, times=20):
    """Median wall time of one request at a time, with the same connection kept."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    timings = []
    for _ in range(times + 2):
        started = time.perf_counter()
        answer = session.get(url, timeout=10)
        timings.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200 and len(answer.json()["results"]) == 100, url
    return statistics.median(timings[2:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000,
                        help="heartbeat_paced's requests a second (default 1,000: 10,000 "
                        "agents beating every 10 s)")
    parser.add_argument("--routes", default=",".join(ROUTES),
                        help="a comma-separated subset of the routes (the baseline always "
                        "runs, and transactions with transactions_1m)")
    parser.add_argument("--front", choices=("nginx", "off"),
                        default="nginx" if os.access(nginx_binary(), os.X_OK) else "off",
                        help="nginx before the two gunicorn pools, as the start script does "
                        "where nginx is installed (default), or gunicorn alone")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    chosen = {"baseline", *filter(None, options.routes.split(","))}
    if "transactions_1m" in chosen:
        chosen.add("transactions")  # its measure
    if chosen - set(ROUTES):
        parser.error(f"unknown routes: {', '.join(sorted(chosen - set(ROUTES)))}; "
                     f"they are {', '.join(ROUTES)}")
    connections = [int(c) for c in options.connections.split(",")]
    wrk_installed()

    data = Path(tempfile.mkdtemp(prefix="dmarket-load-"))
    os.environ.update(DATABASE_URL=fresh_database(os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"), "dmarket_load"),
        DMARKET_DATA_DIR=str(data))
    import django

    django.setup()
    speed = [host_speed_ms()]
    # The paced beats come from --rate x 10 machines (10,000): agents beating every 10 s.
    agents = options.rate * 10 if "heartbeat_paced" in chosen else 0
    key, beats = seed(connections, agents)
    started = time.monotonic()
    small_key = seed_ledger("ledger100", 100)
    # Without transactions_1m, a token that answers without a million rows to write.
    big_rows = options.ledger_rows if "transactions_1m" in chosen else 1
    big_key = seed_ledger("ledger1m", big_rows)
    from django.db import connection
    with connection.cursor() as cursor:
        # Statistics, as a database that has run a while has them (autovacuum is off on the
        # PostgreSQL CI sets up): without them the heartbeat's plan read every machine's row.
        cursor.execute("ANALYZE")
    if not options.json:
        print(f"  seeded {big_rows:,} ledger rows in "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    # DRF's cursor: a position (an id) half-way down the big ledger.
    from django.db.models import Max, Min

    from dmarket.credits.models import LedgerEntry
    span = LedgerEntry.objects.filter(user__username="ledger1m").aggregate(
        low=Min("id"), high=Max("id"))
    middle = base64.b64encode(f"p={(span['low'] + span['high']) // 2}".encode()).decode()
    transactions = "/api/credits/transactions/?page_size=100"

    port = free_port()
    server = start_server(port, data, options.front)
    base = f"http://127.0.0.1:{port}"
    finished = False
    try:
        for _ in range(100):
            try:
                requests.get(base + "/api/schema/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        routes = {name: reqs for name, reqs in {
            "baseline": [(key, "/bench/baseline/", "{}")],
            "heartbeat": beats[:max(connections)],
            "heartbeat_paced": beats[:agents],
            "jobs": [(key, "/api/jobs/", None)],
            "credits": [(key, "/api/credits/", None)],
            "transactions": [(small_key, transactions, None)],
            "transactions_1m": [(big_key, transactions, None),
                                (big_key, f"{transactions}&cursor={middle}", None)],
        }.items() if name in chosen}
        for name, reqs in routes.items():  # each answers before any is timed
            token, path, body = reqs[0][:3]
            method = requests.post if body else requests.get
            answer = method(base + path, data=body, timeout=10, headers={
                "Authorization": f"Token {token}", "Content-Type": "application/json"})
            assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
        alone = {}
        for name, token, path in (("transactions", small_key, transactions),
                                  ("transactions_1m newest", big_key, transactions),
                                  ("transactions_1m middle", big_key,
                                   f"{transactions}&cursor={middle}")):
            if name.split()[0] not in chosen:
                continue
            alone[name] = page_alone_ms(base + path, token)
            if not options.json:
                print(f"  {name:<23} alone: {alone[name]:.1f} ms", file=sys.stderr)
        results = {}
        for c in connections:
            # Repetitions interleaved (every route once, then again): a slow spell of the
            # machine falls on all the routes alike, not on one route's three runs.
            runs = {name: [] for name in routes}
            for _ in range(options.repeat):
                for name, reqs in routes.items():
                    period = (wrk_threads(c) * 1000 / options.rate
                              if name == "heartbeat_paced" else None)
                    # The closed loop: as many machines as connections, each wrk thread
                    # cycling through them from its own place.
                    script = lua_for(reqs[:c] if name == "heartbeat" else reqs,
                                     wrk_threads(c), period)
                    if name == "heartbeat_paced":
                        tokens_used_as_in_steady_state(reqs, options.rate,
                                                       wrk_threads(c))
                    runs[name].append(run_wrk(base, script, c, options.seconds, server.pid))
            for name in routes:
                results[(name, c)] = {
                    "rps": statistics.median(r["rps"] for r in runs[name]),
                    "p99_ms": statistics.median(r["p99_ms"] for r in runs[name]),
                    "cpu_ms": statistics.median(r["cpu_ms"] for r in runs[name]),
                    "errors": sum(r["errors"] + r["non2xx"] for r in runs[name])}
                if not options.json:
                    print(f"  {name:<15} c={c:<4} {results[(name, c)]['rps']:8.0f} req/s  "
                          f"p99 {results[(name, c)]['p99_ms']:7.1f} ms  "
                          f"cpu {results[(name, c)]['cpu_ms']:5.2f} ms/req", file=sys.stderr)
        finished = True
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        # With the front, the shell that led them has gone; the pools may still be logging.
        for _ in range(300):
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        if finished:
            shutil.rmtree(data, ignore_errors=True)  # the access log: a line a request
        else:
            print(f"the server's logs are kept in {data}", file=sys.stderr)
    speed.append(host_speed_ms())

    rows = []
    for (name, c), r in results.items():
        against = "transactions" if name == "transactions_1m" else "baseline"
        # The paced route's rate is the one asked for: against the baseline's, it says nothing.
        ratio = (None if name == "heartbeat_paced"
                 else round(r["rps"] / results[(against, c)]["rps"], 3))
        cpu_ratio = results[(against, c)]["cpu_ms"] / r["cpu_ms"]
        rows.append({"route": name, "connections": c, "rps": round(r["rps"], 1),
                     "p99_ms": round(r["p99_ms"], 1), "ratio": ratio,
                     "cpu_ms": round(r["cpu_ms"], 2), "cpu_ratio": round(cpu_ratio, 3),
                     "errors": r["errors"]})
        if name == "heartbeat_paced":
            # wrk times a request from when it leaves: behind the timetable, the wait for a
            # free connection is not in the p99.
            rows[-1]["behind"] = r["rps"] < 0.98 * options.rate
    if options.json:
        print(json.dumps({"routes": rows, "alone_ms": alone, "host_speed_ms": speed}, indent=2))
        return
    print(f"{'ROUTE':<15} {'CONN':>4} {'REQ/S':>8} {'P99 MS':>7} {'/BASELINE':>9} "
          f"{'CPU MS':>6} {'/BASE CPU':>9} {'ERRORS':>6}  TARGET")
    fixed = lambda v, w: "-".rjust(w) if v is None else f"{v:>{w}.3f}"  # noqa: E731
    targets = {"heartbeat": ">= 1000 req/s, >= 0.5",
               "heartbeat_paced": f"{options.rate} req/s asked, p99 <= 100 ms",
               "jobs": ">= 0.5", "credits": ">= 0.5",
               "transactions_1m": ">= 0.5 of transactions (100 rows)"}
    for row in rows:
        print(f"{row['route']:<15} {row['connections']:>4} {row['rps']:>8.0f} "
              f"{row['p99_ms']:>7.1f} {fixed(row['ratio'], 9)} {row['cpu_ms']:>6.2f} "
              f"{row['cpu_ratio']:>9.3f} {row['errors']:>6}  {targets.get(row['route'], '')}"
              f"{'; FELL BEHIND, p99 too low' if row.get('behind') else ''}")
    print("\nCPU MS: the server's CPU (gunicorn and PostgreSQL) per request; /BASE CPU: the "
          "baseline's over the route's,\nthe requests a second the route would keep if CPU "
          "were the only limit.")
    print(f"\nHost speed (a fixed Python loop, before and after; lower is faster): "
          f"{speed[0]:.0f} ms, {speed[1]:.0f} ms.")
    if alone:
        print("\nA transactions page alone (median of 20; target at 1 M rows: < 20 ms):")
    for name, ms in alone.items():
        print(f"  {name:<23} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
