"""Hostile jobs on the real cluster, submitted by a user (not an operator) as stored files:
each thing a job must not reach, tried from its driver, fails; what it prints or writes about
applications counts for nothing."""

import json
import os
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from dmarket.cluster import spark
from dmarket.cluster.launcher import launcher_tick
from dmarket.cluster.billing import billing_tick
from dmarket.cluster.models import PolicedApp
from dmarket.credits.models import LedgerEntry, UsageRecord
from dmarket.files.tests.util import uploaded
from dmarket.jobs.models import Job
from dmarket.jobs.services import job_cancel

from .conftest import APPS
from .util import master_summary, read_log, settled, share_workers, submit

pytestmark = pytest.mark.django_db(transaction=True)

SURVIVOR = "313373.5"
# What a driver's environment may hold: the sandbox's allowlist and the job's own.
ALLOWED_ENV = {"PATH", "HOME", "TMPDIR", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
               "SPARK_HOME", "SPARK_USER", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON",
               "DMARKET_JOB_ID", "DMARKET_OUTPUT_DIR", "TF_USE_LEGACY_KERAS", "LANG", "LC_ALL",
               "LC_CTYPE", "TZ", "JAVA_HOME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
               "OMP_NUM_THREADS", "SPARK_CONF_DIR",
               # Set by spark-submit and PySpark themselves for the Python driver.
               "PYTHONPATH", "PYTHONHASHSEED", "SPARK_ENV_LOADED", "SPARK_SCALA_VERSION",
               "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_AUTH_SOCKET_TIMEOUT",
               "SPARK_BUFFER_SIZE", "PYSPARK_PIN_THREAD", "_SPARK_CMD_USAGE", "SPARK_CONNECT_MODE",
               "SPARK_CONNECT_MODE_ENABLED", "PYTHONSTARTUP", "SPARK_LOCAL_IP",
               "SPARK_PREFER_IPV6", "PWD", "SHLVL", "_", "OLDPWD", "LC_NUMERIC", "MASTER",
               "SPARK_BEELINE_OPTS"}


def run(*jobs, until, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher_tick()
        billing_tick()
        for job in jobs:
            job.refresh_from_db()
        if until():
            return
        time.sleep(0.2)
    raise AssertionError("timed out: " + "; ".join(
        f"job {j.pk} {j.status}:\n{read_log(j)[-3000:]}" for j in jobs)
        + f"\nthe master:\n{master_summary()}")


def address(url):
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def hostile_job(user, targets, **fields):
    uploaded(user, "hostile.py", (APPS / "hostile.py").read_bytes())
    return submit(user, entry_file="dmarket://hostile.py", app_params=[json.dumps(targets)],
                  cores=1, **fields)


def report_of(job):
    return json.loads((job.output_dir / "report.json").read_text())


def has_executor(job):
    try:
        executors = spark.history_executors(job.spark_app_id) or []
    except spark.SparkUnavailable:
        return False
    return any(e["id"] != "driver" for e in executors)


def survivors():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if SURVIVOR.encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_a_hostile_job_reaches_nothing_of_the_server_nor_of_others(
        cluster, make_user, live_server, settings, jobs_dir):
    settings.DMARKET_PUBLIC_URL = live_server.url
    share_workers(cluster, make_user)
    bob, mallory = make_user("bob"), make_user("mallory")
    uploaded(bob, "private/model.h5", b"bob's model")
    other = jobs_dir / "999" / "output"
    other.mkdir(parents=True)
    (other / "result.txt").write_text("another job's result")
    secret = django_settings.DATA_DIR / "secret_key"
    db = settings.DATABASES["default"]
    targets = {
        "read": [str(secret), str(other / "result.txt"), "/etc/shadow"],
        "list": [str(settings.DMARKET_FILES_DIR), str(django_settings.DATA_DIR),
                 str(other), str(settings.DMARKET_EVENT_LOG_DIR)],
        "write": [str(jobs_dir / "999" / "output" / "x"),
                  str(settings.DMARKET_EVENT_LOG_DIR / "app-20260101000000-0000")],
        "signal": [os.getpid(), cluster.processes["master"].pid],
        "connect": [f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}",
                    address(cluster.master_ui), address(cluster.history_url),
                    # Allowed: the master itself and the file store, which every job needs.
                    address(cluster.master_url), address(live_server.url)],
        "survivor": SURVIVOR,
    }
    assert secret.exists() and any(settings.DMARKET_FILES_DIR.iterdir())

    job = hostile_job(mallory, targets)
    run(job, until=lambda: job.settled_at is not None)

    assert job.status == Job.SUCCEEDED, read_log(job)
    report = report_of(job)
    assert report["uid"] != os.getuid()
    assert all(not r["ok"] for r in report["read"].values()), report["read"]
    assert all(not r["ok"] for r in report["list"].values()), report["list"]
    assert report["jobs"] == [str(job.pk)]  # of the jobs' directory, it sees its own
    assert not report["own_exit_code"]["ok"], report["own_exit_code"]
    assert all(not r["ok"] for r in report["write"].values()), report["write"]
    assert all(not r["ok"] for r in report["signal"].values()), report["signal"]
    assert all(not r["ok"] for r in report["environ"].values()), report["environ"]
    connect = report["connect"]
    blocked, allowed = targets["connect"][:3], targets["connect"][3:]
    assert [connect[a]["ok"] for a in blocked] == [False, False, False], connect
    assert [connect[a]["ok"] for a in allowed] == [True, True], connect
    assert set(report["env"]) <= ALLOWED_ENV, set(report["env"]) - ALLOWED_ENV
    assert "DATABASE_URL" not in report["env"] and "SECRET_KEY" not in report["env"]
    # Its own processes only: the sandbox's init, spark-submit's JVM, the Python driver...
    assert len(report["proc"]) < 10 and os.getpid() not in report["proc"]
    # The process it started in a session of its own ended with the job.
    assert survivors() == []
    assert (job.work_dir / "exit_code").read_text() == "0\n"
    assert not (settings.DMARKET_EVENT_LOG_DIR / "app-20260101000000-0000").exists()


def test_a_job_claiming_another_jobs_application_can_neither_cancel_it_nor_be_billed_for_it(
        cluster, make_user, live_server, settings):
    settings.DMARKET_PUBLIC_URL = live_server.url
    share_workers(cluster, make_user)
    bob, mallory = make_user("bob"), make_user("mallory")
    victim = submit(bob, cores=1, app_params=["--seconds", "25", "--tasks", "2"])
    run(victim, until=lambda: bool(victim.spark_app_id))

    hostile = hostile_job(mallory, {
        "read": [], "list": [], "write": [], "signal": [], "connect": [],
        "survivor": SURVIVOR, "foreign_app": victim.spark_app_id,
        "events_dir": str(Job(pk=victim.pk + 1).events_dir), "spark": True, "seconds": 60})
    run(victim, hostile, until=lambda: bool(hostile.spark_app_id))

    assert hostile.spark_app_id != victim.spark_app_id
    assert f"Connected to Spark cluster with app ID {victim.spark_app_id}" in read_log(hostile)
    # Cancelled once it has an executor, which it pays for.
    run(victim, hostile, until=lambda: has_executor(hostile))
    job_cancel(hostile)
    run(victim, hostile, until=lambda: settled(victim) and settled(hostile))

    assert hostile.status == Job.CANCELLED
    assert victim.status == Job.SUCCEEDED, read_log(victim)
    charges = LedgerEntry.objects.filter(run=hostile.run, kind=LedgerEntry.CHARGE)
    assert charges.exists()
    metered = UsageRecord.objects.filter(run=hostile.run).values_list("key", flat=True)
    assert metered and all(key.startswith(f"{hostile.spark_app_id}:") for key in metered)
    assert not UsageRecord.objects.filter(run=hostile.run, key__contains=victim.spark_app_id)


def test_a_job_runs_one_application_a_second_one_is_killed(
        cluster, make_user, live_server, settings):
    settings.DMARKET_PUBLIC_URL = live_server.url
    share_workers(cluster, make_user)
    job = hostile_job(make_user("mallory"), {
        "read": [], "list": [], "write": [], "signal": [], "connect": [],
        "survivor": SURVIVOR, "spark": True, "second": True})
    run(job, until=lambda: job.settled_at is not None)

    log = read_log(job)
    first = re.search(r"^started (app-\S+)$", log, re.M).group(1)
    # Killed as soon as the master lists it, often before its session is even up.
    second = re.search(r"^dmarket: application (app-\S+) killed", log, re.M).group(1)
    assert job.spark_app_id == first != second
    assert f"dmarket: application {second} killed: a job runs one application ({first})" in log
    assert job.status == Job.FAILED
    completed = {a["id"]: a["state"] for a in spark.master_state()["completedapps"]}
    assert completed[second] == "KILLED"


def test_a_second_application_a_job_starts_is_killed_within_5_s_billed_to_it_and_fails_it(
        cluster, make_user, live_server, settings):
    settings.DMARKET_PUBLIC_URL = live_server.url
    # The cluster fixture leaves both workers' cores free: the job takes one, its second
    # application the other.
    machines = share_workers(cluster, make_user)
    job = hostile_job(make_user("mallory"), {
        "read": [], "list": [], "write": [], "signal": [], "connect": [],
        "survivor": SURVIVOR, "spark": True, "rogue": True})
    run(job, until=lambda: job.settled_at is not None, timeout=240)

    apps = spark.master_state()["completedapps"]
    rogue = [a for a in apps if a["name"] == "rogue" and a["user"] == "nobody-at-all"]
    # It held the secret (its driver's), so it registered; the police killed it.
    assert [a["state"] for a in rogue] == ["KILLED"], apps
    assert rogue[0]["duration"] < 5000, rogue
    record = PolicedApp.objects.get(app_id=rogue[0]["id"])
    # The police names the job from the sandbox's sockets, read before the kill (a killed
    # driver drops its connections to the master at once, executors registered or not).
    assert record.job == job and record.spark_user == "nobody-at-all", (
        record.reason, record.driver_address, record.executors, record.started_at,
        record.killed_at)
    # Its executor, if the police saw it up: on 2 busy cores an executor's JVM can take longer
    # than the police's 2 s grace to start (seen here in about half the runs).
    assert [e["cores"] for e in record.executors] in ([1], []), record.executors
    assert bool(record.driver_address) == bool(record.executors), record.driver_address
    assert job.status == Job.FAILED and job.spark_app_id != rogue[0]["id"]
    assert job.status_reason == (f"the job started a second Spark application "
                                 f"({rogue[0]['id']}), which the market killed; what it ran "
                                 f"is billed to this job")
    if not record.executors:
        # Killed before its executor was up: nothing of it ran, nothing of it is billed.
        assert not UsageRecord.objects.filter(run=job.run, key__startswith="policed:").exists()
        return
    # Its executor's cores from the application's start to its kill, on the machine that ran
    # it, and that machine's owner paid the same.
    span_ms = (record.killed_at - record.started_at) // timedelta(milliseconds=1)
    # Metered as its own usage record, posted (at the job's end) as its own charge.
    usage = UsageRecord.objects.get(run=job.run, key__startswith="policed:")
    assert usage.core_ms == span_ms
    charge = LedgerEntry.objects.get(key=usage.posted_key)
    assert (charge.run, charge.kind) == (job.run, LedgerEntry.CHARGE)
    assert charge.memo.endswith(f": usage {usage.key}, {span_ms} core-ms")
    ran_on = {m.worker_id: m for m in machines.values()}[record.executors[0]["worker"]]
    earning = LedgerEntry.objects.get(key="earning:" + usage.posted_key.removeprefix("charge:"))
    assert (earning.user, earning.amount) == (ran_on.user, -charge.amount)
