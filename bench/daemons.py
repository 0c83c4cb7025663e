"""The daemons at scale: one monitor pass over 10,000 machines and billing passes over 1,000
running jobs, each timed and its database queries counted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/daemons.py [--machines 10000] [--jobs 1000] [--json]

Against a fresh PostgreSQL database (--database, default dmarket_daemons, on DATABASE_URL's
server), seeded with bulk inserts: --machines machines ONLINE, a worker each, of which
--silent (10 %) last sent a heartbeat ten minutes ago; --jobs RUNNING jobs, each with a Spark
application. A fake Spark master and history server (a real HTTP server on 127.0.0.1, in its
own process so that its work does not share the timed process's interpreter lock) lists the
live machines' workers (those running executors with cores in use) and answers each
application with its two executors, one ended and one running, on two live machines, in
--latency-ms per request, or --slow-ms for a --slow fraction of the applications.

The passes, as the daemons make them (dmarket.cluster.monitor.monitor_tick,
dmarket.cluster.billing.billing_tick):

- monitor, first: the silent machines go OFFLINE (in bulk) and the workers' cores in use are
  recorded; monitor, steady: the next pass, nothing changed;
- billing at concurrency 1 and at DMARKET_BILLING_CONCURRENCY (8), the same work each
  (the usage records of the pass before are deleted first): the ratio of their history
  lookups' times is the figure of concurrency; both with a deadline long enough for all;
- billing, posting: as at the default, with DMARKET_BILLING_INTERVAL=0, so that every job's
  usage is also posted to the ledger in the pass (the default posts once a minute);
- billing, --hung applications hang: their requests never answer; the default deadline;
- billing, history server hung: every request hangs; the pass ends by the deadline.

Prints a table (or --json) of seconds, queries and queries per item of each. Only ever talks
to 127.0.0.1 and the database server.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import free_port, fresh_database  # noqa: E402 - bench/ on the path first

APP = "/api/v1/applications/"


# --- the world: the same functions on both sides of the fake servers ------------------------

def address(m):
    return f"10.{m // 65536 % 256}.{m // 256 % 256}.{m % 256}"


def app_id(j):
    return f"app-20260101000000-{j:05d}"


def silent_count(options):
    return int(options.machines * options.silent)


def app_machines(j, options):
    """The two live machines that run application j's executors."""
    silent = silent_count(options)
    alive = options.machines - silent
    return silent + (2 * j) % alive, silent + (2 * j + 1) % alive


def is_slow(j, options):
    return options.slow > 0 and j % max(1, round(1 / options.slow)) == 0


# --- the fake Spark master and history server (its own process: --serve PORT) --------------

def history_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}GMT"


def serve(port, options):
    import http.server

    now = datetime.now(timezone.utc)
    answers, used = {}, set()
    for j in range(options.jobs):
        ended_on, running_on = app_machines(j, options)
        used |= {ended_on, running_on}

        def executor(executor_id, m, ended):
            e = {"id": executor_id, "totalCores": 2, "hostPort": f"{address(m)}:40000",
                 "addTime": history_time(now - timedelta(hours=2 if ended else 1)),
                 "executorLogs": {"stdout": f"http://{address(m)}:8081/logPage/?appId="
                                            f"{app_id(j)}&executorId={executor_id}"
                                            "&logType=stdout"}}
            if ended:
                e["removeTime"] = history_time(now - timedelta(hours=1))
            return e

        answers[app_id(j)] = (
            json.dumps({"id": app_id(j), "name": f"job {j}",
                        "attempts": [{"completed": False,
                                      "startTime": history_time(now - timedelta(hours=2))}]}
                       ).encode(),
            json.dumps([{"id": "driver", "hostPort": "10.255.255.1:40000", "totalCores": 0,
                         "addTime": history_time(now - timedelta(hours=2))},
                        executor("1", ended_on, True), executor("2", running_on, False)]
                       ).encode())
    workers = json.dumps({"workers": [
        {"id": f"worker-{m}", "webuiaddress": f"http://{address(m)}:8081", "state": "ALIVE",
         "cores": 8, "coresused": 2 if m in used else 0}
        for m in range(silent_count(options), options.machines)]}).encode()
    hung = {"apps": set(), "all": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, body, status=200):
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up

        def do_POST(self):  # /control: {"hung": [application ids], "all": bool}
            control = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hung["apps"] = set(control.get("hung", []))
            hung["all"] = bool(control.get("all"))
            self.reply(b"{}")

        def do_GET(self):
            if self.path.rstrip("/") == "/json":
                return self.reply(workers)
            if not self.path.startswith(APP):
                return self.reply(b"{}", 404)
            app, _, what = self.path[len(APP):].partition("/")
            if app not in answers:
                return self.reply(b"{}", 404)
            if hung["all"] or app in hung["apps"]:
                time.sleep(600)
            j = int(app.rsplit("-", 1)[1])
            time.sleep((options.slow_ms if is_slow(j, options) else options.latency_ms) / 1000)
            self.reply(answers[app][1 if what == "allexecutors" else 0])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    server.serve_forever()


def start_server(options):
    port = free_port()
    argv = [sys.executable, __file__, "--serve", str(port)]
    for name in ("machines", "jobs", "silent", "slow", "latency_ms", "slow_ms"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(options, name))]
    process = subprocess.Popen(argv)
    url = f"http://127.0.0.1:{port}"
    import requests

    for _ in range(200):
        try:
            requests.get(url + "/json/", timeout=2)
            return process, url
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    sys.exit("the fake history server did not start")


def control(url, **body):
    import requests

    requests.post(url + "/control", json=body, timeout=5).raise_for_status()


# --- the bench ------------------------------------------------------------------------------

def seed(options):
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone as dj_timezone

    from dmarket.credits.models import Run
    from dmarket.jobs.models import Job
    from dmarket.machines.models import Machine

    call_command("migrate", verbosity=0)
    User = get_user_model()
    owner = User.objects.create_user("contributor", "c@example.org", "a long bench password 0")
    users = [User.objects.create_user(f"user{k}", "u@example.org", "a long bench password 1")
             for k in range(10)]
    now = dj_timezone.now()
    silent = silent_count(options)
    Machine.objects.bulk_create([
        Machine(user=owner, name=f"m{m}", cores=8, memory_mb=16384, address=address(m),
                worker_id=f"worker-{m}", state=Machine.ONLINE, worker_state="ALIVE",
                last_heartbeat=now - timedelta(minutes=10) if m < silent else now)
        for m in range(options.machines)], batch_size=2000)
    runs = Run.objects.bulk_create([
        Run(user=users[j % len(users)], label=f"job {j}", max_credits=Decimal("1000"),
            price_per_core_hour=Decimal("1"), premium_rate=Decimal("1"))
        for j in range(options.jobs)], batch_size=1000)
    Job.objects.bulk_create([
        Job(user=users[j % len(users)], run=runs[j], name=f"job {j}",
            entry_file="dmarket://a.py@1", cores=4, status=Job.RUNNING,
            spark_app_id=app_id(j), started_at=now - timedelta(hours=2))
        for j in range(options.jobs)], batch_size=1000)


class Notes(logging.Handler):
    """What billing logs about lookups: jobs whose history was unavailable, lookups late."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.unavailable = self.late = 0

    def emit(self, record):
        if "history server unavailable" in record.msg:
            self.unavailable += 1
        elif "not done within" in record.msg:
            self.late += record.args[0]


def measure(name, items, run):
    """Time run() and count the SQL statements it sends (this thread's: the lookups' threads
    send none; BEGIN and COMMIT not counted)."""
    from django.db import connection

    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql.lstrip()[:6].upper())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
    row = {"pass": name, "items": items, "seconds": round(seconds, 3),
           "queries": len(statements),
           "queries_per_item": round(len(statements) / max(items, 1), 2),
           "updates": statements.count("UPDATE")}
    row.update(result or {})
    return row


def billing_pass(name, options, concurrency, deadline, interval=60):
    from django.conf import settings

    from dmarket.cluster import billing
    from dmarket.credits.models import UsageRecord

    UsageRecord.objects.all().delete()
    settings.DMARKET_BILLING_CONCURRENCY = concurrency
    settings.DMARKET_BILLING_DEADLINE = deadline
    settings.DMARKET_BILLING_INTERVAL = interval
    notes = Notes()
    logger = logging.getLogger("dmarket.cluster.billing")
    logger.addHandler(notes)
    logger.propagate = False  # counted, not printed
    lookups = {}
    original = billing.history_lookups

    def timed_lookups(*args):
        start = time.perf_counter()
        try:
            return original(*args)
        finally:
            lookups["seconds"] = time.perf_counter() - start

    billing.history_lookups = timed_lookups
    try:
        row = measure(name, options.jobs, lambda: billing.billing_tick() and None)
    finally:
        billing.history_lookups = original
        logger.removeHandler(notes)
        logger.propagate = True
    row.update(concurrency=concurrency, deadline=deadline,
               lookup_seconds=round(lookups.get("seconds", 0), 3),
               billed=UsageRecord.objects.values("run").distinct().count(),
               unavailable=notes.unavailable, late=notes.late)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--silent", type=float, default=0.1,
                        help="the fraction of machines whose heartbeats stopped")
    parser.add_argument("--slow", type=float, default=0.05,
                        help="the fraction of applications the history server is slow with")
    parser.add_argument("--latency-ms", type=float, default=2)
    parser.add_argument("--slow-ms", type=float, default=50)
    parser.add_argument("--hung", type=int, default=10)
    parser.add_argument("--database", default="dmarket_daemons")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        return serve(options.serve, options)

    os.environ.update(DATABASE_URL=fresh_database(os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"), options.database),
        DMARKET_DATA_DIR=tempfile.mkdtemp(prefix="dmarket-daemons-"),
        DJANGO_SETTINGS_MODULE="dmarket.settings")
    import django

    django.setup()
    from django.conf import settings

    from dmarket.cluster.monitor import monitor_tick
    from dmarket.machines.models import Machine

    started = time.perf_counter()
    seed(options)
    seeded = time.perf_counter() - started
    server, url = start_server(options)
    settings.DMARKET_SPARK_MASTER_UI = settings.DMARKET_HISTORY_URL = url
    default_concurrency = settings.DMARKET_BILLING_CONCURRENCY
    default_deadline = settings.DMARKET_BILLING_DEADLINE
    rows = []
    try:
        silent = silent_count(options)
        rows.append(measure(f"monitor: {silent:,} of {options.machines:,} silent",
                            options.machines, lambda: {"changed": monitor_tick()}))
        offline = Machine.objects.filter(state=Machine.OFFLINE).count()
        assert offline == silent, (offline, silent)
        rows.append(measure("monitor: steady", options.machines,
                            lambda: {"changed": monitor_tick()}))
        rows.append(billing_pass("billing: concurrency 1", options, 1, 600))
        rows.append(billing_pass(f"billing: concurrency {default_concurrency}", options,
                                 default_concurrency, 600))
        rows.append(billing_pass("billing: posting (interval 0)", options, default_concurrency,
                                 600, interval=0))
        hung = [app_id(j) for j in range(0, options.jobs, max(1, options.jobs // options.hung))]
        control(url, hung=hung[:options.hung])
        rows.append(billing_pass(f"billing: {options.hung} apps hung", options,
                                 default_concurrency, default_deadline))
        control(url, all=True)
        rows.append(billing_pass("billing: history server hung", options,
                                 default_concurrency, default_deadline))
    finally:
        server.terminate()
        server.wait(timeout=30)

    one, default = rows[2], rows[3]
    summary = {"machines": options.machines, "jobs": options.jobs, "seed_seconds": round(
        seeded, 1), "cpus": os.cpu_count(), "latency_ms": options.latency_ms,
        "slow": options.slow, "slow_ms": options.slow_ms,
        "lookup_speedup": round(one["lookup_seconds"] / default["lookup_seconds"], 2),
        "pass_speedup": round(one["seconds"] / default["seconds"], 2), "passes": rows}
    if options.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{options.machines:,} machines, {options.jobs:,} running jobs, {os.cpu_count()} "
          f"CPUs; history answers in {options.latency_ms:g} ms a request, "
          f"{options.slow_ms:g} ms for {options.slow:.0%} of the applications; seeded in "
          f"{seeded:.1f} s")
    print(f"{'PASS':<34} {'SECONDS':>8} {'LOOKUPS':>8} {'QUERIES':>8} {'/ITEM':>6} "
          f"{'UPDATES':>7} {'BILLED':>6} {'UNAVAIL':>7} {'LATE':>5}")
    for row in rows:
        lookups = f"{row['lookup_seconds']:.2f}" if "lookup_seconds" in row else "-"
        print(f"{row['pass']:<34} {row['seconds']:>8.2f} {lookups:>8} {row['queries']:>8} "
              f"{row['queries_per_item']:>6.2f} {row['updates']:>7} "
              f"{row.get('billed', row.get('changed', '-')):>6} "
              f"{row.get('unavailable', '-'):>7} {row.get('late', '-'):>5}")
    print(f"concurrency {default['concurrency']} / 1: history lookups "
          f"{summary['lookup_speedup']:.2f}x faster, whole pass {summary['pass_speedup']:.2f}x")
    print("monitor rows: BILLED is how many machines changed state, UPDATES includes one a "
          "machine whose cores in use changed; /ITEM is per machine, billing's per running "
          "job; QUERIES are SQL statements, BEGIN and COMMIT not counted")


if __name__ == "__main__":
    main()
