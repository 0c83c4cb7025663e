"""The market's overhead over a bare spark-submit, measured in one run on one cluster.

    .venv/bin/python bench/latency.py [--runs 3] [--app sample/pi/pi.py] [--args 2]

Starts a local Spark cluster (master, history server, one worker), the central server
(gunicorn), the launcher and the billing daemon, each on free ports, in a temporary data
directory, against PostgreSQL (DATABASE_URL, default the machine's server; a fresh database
dmarket_bench) . Then, alternately, runs the same application with a bare spark-submit and
through the market's API, and prints:

- submit -> driver starting: from POST /api/jobs/ to the job showing STARTING (the API is
  polled every 0.1 s, so this is at most 0.1 s late).
- start -> application registered: for spark-submit, from its start to the "Connected to Spark
  cluster with app ID" line; for the market, from POST /api/jobs/ to the job showing RUNNING.
- driver exit -> final state in the API, and driver exit -> bill in the API (settled_at set).
- whole: from start (POST) until the result is known (bare: spark-submit exits; market: the
  API shows the job finished and billed).

The market runs each job twice per run: with its driver in the sandbox (the default) and with
DMARKET_SANDBOX=off (the launcher restarted between them, and up before the submit), so the
sandbox's cost is the ratio of the two in the same run. The application goes into the bench
user's file store first, as a user's job names it (dmarket://).
"""

import argparse
import os
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--app", default=str(ROOT / "sample" / "pi" / "pi.py"))
    parser.add_argument("--args", nargs="*", default=["2"])
    options = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="dmarket-bench-"))
    database = fresh_database(os.environ.get("DATABASE_URL",
                                             "postgres://postgres@127.0.0.1:5432/postgres"),
                              "dmarket_bench")
    os.environ.update(DATABASE_URL=database, DMARKET_DATA_DIR=str(data))

    import django

    django.setup()
    from django.conf import settings

    from dmarket.cluster.spark import spark_home
    from dmarket.cluster.testing import LocalCluster

    cluster = LocalCluster(data / "spark").start(workers=[("127.0.0.2", 2, 2048)])
    port = free_port()
    env = dict(os.environ, DMARKET_SPARK_MASTER_URL=cluster.master_url,
               DMARKET_PUBLIC_URL=f"http://127.0.0.1:{port}",
               DMARKET_SPARK_MASTER_UI=cluster.master_ui, DMARKET_HISTORY_URL=cluster.history_url,
               DMARKET_EVENT_LOG_DIR=str(cluster.events), DMARKET_BILLING_POLL="2",
               DMARKET_SPARK_SECRET=cluster.secret,
               DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD="bench-admin-pw")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v0"], env=env, check=True)
    subprocess.run(manage + ["ensure_superuser"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(manage + ["cluster_machine", "--address", "127.0.0.2", "--cores", "2",
                             "--memory-mb", "2048"], env=env, check=True, stdout=subprocess.DEVNULL)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    daemons = [
        subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "dmarket.wsgi", "--bind",
                          f"127.0.0.1:{port}", "--workers", "2"], cwd=ROOT, env=env,
                         stdout=open(logs / "web.log", "wb"), stderr=subprocess.STDOUT),
        subprocess.Popen(manage + ["billing", "--loop"], env=env,
                         stdout=open(logs / "billing.log", "wb"), stderr=subprocess.STDOUT),
    ]
    api = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(100):
            try:
                requests.get(api + "/schema/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        token = requests.post(api + "/auth/register/", json={
            "username": "bench", "password": "bench password 123"}).json()["token"]
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        app = Path(options.app)
        stored = session.put(f"{api}/files/bench/{app.name}", data=app.read_bytes())
        assert stored.status_code in (200, 201), stored.text
        options.entry = f"dmarket://bench/{app.name}"
        bare_argv = [str(spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url,
                     "--conf", "spark.cores.max=2", "--executor-cores", "1",
                     "--executor-memory", "512m", "--conf", "spark.eventLog.enabled=true",
                     "--conf", f"spark.eventLog.dir={cluster.events.as_uri()}",
                     "--conf", "spark.driver.host=127.0.0.1", options.app, *options.args]
        rows = {"bare": [], "unsandboxed": [], "market": []}
        for run in range(options.runs):
            rows["bare"].append(bare_run(bare_argv, data / f"bare-{run}"))
            for kind, mode in (("unsandboxed", "off"), ("market", "auto")):
                launcher = start_launcher(manage, dict(env, DMARKET_SANDBOX=mode),
                                          logs / f"launcher-{kind}-{run}.log")
                try:
                    rows[kind].append(market_run(session, api, options, settings,
                                                 f"{kind}-{run}"))
                finally:
                    launcher.send_signal(signal.SIGTERM)
                    launcher.wait(timeout=60)
            print(f"run {run + 1}/{options.runs}: " + ", ".join(
                f"{kind} {rows[kind][-1]}" for kind in rows), flush=True)
        report(rows)
    finally:
        for process in daemons:
            process.send_signal(signal.SIGTERM)
        for process in daemons:
            process.wait(timeout=30)
        cluster.cleanup()


def start_launcher(manage, env, log_path):
    """The launcher, up (its loop started) before anything is submitted to it."""
    process = subprocess.Popen(manage + ["launcher", "--loop"], env=env,
                               stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    for _ in range(300):
        if b"launcher: started" in log_path.read_bytes():
            return process
        time.sleep(0.1)
    raise RuntimeError(f"the launcher did not start: {log_path.read_text()[-2000:]}")


def bare_run(argv, out):
    out.mkdir(parents=True)
    env = dict(os.environ, DMARKET_OUTPUT_DIR=str(out), PYSPARK_PYTHON=sys.executable)
    t0 = time.monotonic()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    registered = None
    for line in process.stderr:
        if registered is None and b"Connected to Spark cluster with app ID" in line:
            registered = time.monotonic() - t0
    process.wait()
    total = time.monotonic() - t0
    assert process.returncode == 0, "the bare spark-submit failed"
    return {"picked": 0.0, "registered": registered, "exit_to_state": 0.0, "exit_to_bill": None,
            "whole": total}


def market_run(session, api, options, settings, run):
    body = {"name": f"bench-{run}", "entry_file": options.entry, "app_params": options.args,
            "cores": 2, "executor_memory_mb": 512, "max_credits": "5"}
    t0 = time.time()
    job = session.post(api + "/jobs/", json=body).json()
    picked = running = finished = None
    while True:
        state = session.get(f"{api}/jobs/{job['id']}/").json()
        now = time.time()
        if picked is None and state["status"] != "QUEUED":
            picked = now - t0
        if running is None and state["status"] != "QUEUED" and state["spark_app_id"]:
            running = now - t0
        if finished is None and state["finished_at"]:
            finished = now
        if state["settled_at"]:
            settled = now
            break
        time.sleep(0.1)
    assert state["status"] == "SUCCEEDED", state
    exit_file = Path(settings.DMARKET_JOBS_DIR) / str(job["id"]) / "exit_code"
    exited = exit_file.stat().st_mtime
    return {"picked": picked, "registered": running, "exit_to_state": finished - exited,
            "exit_to_bill": settled - exited, "whole": settled - t0}


def report(rows):
    def median(kind, key):
        values = [r[key] for r in rows[kind] if r[key] is not None]
        return statistics.median(values) if values else None

    print()
    print(f"{'median over runs, seconds':34} {'bare':>8} {'market':>8} {'overhead':>9} "
          f"{'ratio':>6}   {'no sandbox':>10} {'sandbox/none':>12}")
    for key, label in (("picked", "submit -> driver starting"),
                       ("registered", "start -> application registered"),
                       ("exit_to_state", "driver exit -> final state in API"),
                       ("exit_to_bill", "driver exit -> bill in API"),
                       ("whole", "whole job, submit -> result known")):
        bare, market = median("bare", key), median("market", key)
        plain = median("unsandboxed", key)
        bare_text = f"{bare:8.2f}" if bare is not None else f"{'-':>8}"
        overhead = market - (bare or 0)
        ratio = f"{market / bare:6.2f}" if bare else f"{'-':>6}"
        sandbox_ratio = f"{market / plain:12.2f}" if plain else f"{'-':>12}"
        plain_text = f"{plain:10.2f}" if plain is not None else f"{'-':>10}"
        print(f"{label:34} {bare_text} {market:8.2f} {overhead:+9.2f} {ratio}   {plain_text} "
              f"{sandbox_ratio}")


if __name__ == "__main__":
    main()
