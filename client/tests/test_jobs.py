"""dmarket jobs ...: submit, list, show, cancel, log, results, watch, executors.

No launcher runs here (no Spark): the tests play the driver's part by writing its log and
results into the job's directory and changing its state in the database.
"""

import hashlib
import json
import os
import threading
import time
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from dmarket.credits.models import Run
from dmarket.jobs.models import Job
from dmarket.jobs.tests.factories import make_job
from dmarket.machines.models import Machine

SHELL_PARAMS = ["$(touch /tmp/pwned)", "`id`", "a b", "'single'", '"double"', ";", "|",
                "&&", "> out", "*", "~", "$HOME", "--cores", "99", "-x", "", "line\nbreak",
                "back\\slash", "ünïcødé"]


def stamp(moment):
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def submit(dmarket_json, entry_file, *args):
    return dmarket_json("jobs", "submit", entry_file, *args)


@pytest.fixture
def gpu_machine(db):
    """A machine of the market's offering 4 GPUs (someone else's, offline): the server takes a
    job asking for GPUs only where one does."""
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create(username="gpu-owner")
    return Machine.objects.create(user=owner, cores=8, memory_mb=8192, address="192.0.2.20",
                                  machine_type="gpu", gpus=4, state=Machine.OFFLINE)


def later(delay, action):
    """Run action() in a thread after delay seconds (as a launcher would); returns the thread."""

    def run():
        try:
            time.sleep(delay)
            action()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def charge(job_id, cost):
    """Post `cost` credits to the job's run, as billing does (usage of a machine of someone
    else's, at 1 credit a core-hour), so that the ledger says what the job shows."""
    from django.contrib.auth import get_user_model

    from dmarket.credits.models import Run
    from dmarket.credits.services import Usage, run_bill_usage

    Run.objects.filter(job=job_id).update(price_per_core_hour=1, premium_rate=1)
    owner, _ = get_user_model().objects.get_or_create(username="machine-owner")
    machine = Machine.objects.create(user=owner, cores=4, memory_mb=4096, address="10.0.0.9")
    run_bill_usage(Run.objects.get(job=job_id),
                   [Usage(f"app:{machine.pk}", machine, int(Decimal(cost) * 3_600_000))])


def finish(job_id, status=Job.SUCCEEDED, settled=True, cost=None, **changes):
    now = timezone.now()
    if cost is not None:
        charge(job_id, cost)
    Job.objects.filter(pk=job_id).update(status=status, finished_at=now,
                                         settled_at=now if settled else None, **changes)


# --- submit -------------------------------------------------------------------------------

def test_submit_with_every_option(dmarket, dmarket_json, user, tmp_path, monkeypatch,
                                  gpu_machine):
    for name in ("app.py", "dep.py", "bundle.zip", "data.tar.gz", "conf.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    job = submit(dmarket_json, "../app.py",
                 "--name", "every option", "--lib", "../dep.py",
                 "--lib", str(tmp_path / "bundle.zip"),
                 "--lib", "hdfs://namenode:8020/libs/x.zip", "--lib", "https://example.org/y.py",
                 "--archive", "../data.tar.gz#data", "--archive", "https://example.org/z.zip#zz",
                 "--file", "../conf.json#c", "--file", "hdfs://namenode:8020/f.txt",
                 "--cores", "3", "--executor-memory", "2g", "--machine-type", "gpu",
                 "--gpus-per-executor", "1", "--gpus-per-task", "1",
                 "--max-credits", "12.5", "--submission-id", "run-1", "--", *SHELL_PARAMS)
    row = Job.objects.get()
    # The local files were uploaded into ada's store (see test_job_uploads.py).
    x = "dmarket://job-files/" + hashlib.sha256(b"x").hexdigest()[:16]
    assert job == {
        "id": row.pk, "owner": "ada", "name": "every option",
        "entry_file": f"{x}/app.py@1",
        "libs": [f"{x}/dep.py@1", f"{x}/bundle.zip@1",
                 "hdfs://namenode:8020/libs/x.zip", "https://example.org/y.py"],
        "archives": [f"{x}/data.tar.gz@1#data", "https://example.org/z.zip#zz"],
        "files": [f"{x}/conf.json@1#c", "hdfs://namenode:8020/f.txt"],
        "app_params": SHELL_PARAMS,
        "conf": {}, "main_class": "", "requirements": "", "environment": None, "env": "",
        "working_dir": "",
        "cores": 3, "executor_memory_mb": 2048, "driver_memory_mb": 1024, "max_runtime": 21600,
        "machine_type": "gpu", "gpus_per_executor": 1, "gpus_per_task": 1,
        "max_credits": "12.500000", "submission_id": "run-1",
        "status": "QUEUED", "status_reason": "", "cancel_requested": False,
        "price_per_core_hour": "1.000000", "price_per_gpu_hour": "4.000000",
        "premium_rate": "2.0000", "cost": "0.000000",
        "spark_app_id": "", "exit_code": None,
        "created_at": job["created_at"], "started_at": None, "finished_at": None,
        "settled_at": None,
    }
    assert row.app_params == SHELL_PARAMS
    assert row.cores == 3 and row.executor_memory_mb == 2048


def test_params_before_the_separator_and_defaults(dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file, "8", "--cores", "2", "--", "--name", "x")
    assert job["app_params"] == ["8", "--name", "x"]
    assert job["name"] == "app"  # the entry file's name
    assert (job["cores"], job["executor_memory_mb"], job["machine_type"], job["max_credits"],
            job["submission_id"], job["libs"], job["archives"]) == (
        2, 1024, "cpu", "10.000000", None, [], [])


def test_submit_prints_the_job(dmarket, user, entry_file):
    result = dmarket("jobs", "submit", entry_file, "--name", "pi", "--", "a b", "c")
    assert result.exit_code == 0, result.stderr
    job = Job.objects.get()
    assert job.entry_file.startswith("dmarket://job-files/")  # uploaded
    assert result.stdout == (
        f"id                   {job.pk}\n"
        "name                 pi\n"
        "owner                ada\n"
        "status               QUEUED\n"
        "status_reason        \n"
        "cancel_requested     no\n"
        f"entry_file           {job.entry_file}\n"
        "libs                 \n"
        "archives             \n"
        "files                \n"
        "app_params           'a b' c\n"
        "cores                1\n"
        "executor_memory_mb   1024\n"
        "driver_memory_mb     1024\n"
        "max_runtime          21600\n"
        "machine_type         cpu\n"
        "max_credits          10.000000\n"
        "cost                 0.000000\n"
        "price_per_core_hour  1.000000\n"
        "price_per_gpu_hour   4.000000\n"
        "premium_rate         2.0000\n"
        "submission_id        \n"
        "spark_app_id         \n"
        "exit_code            \n"
        f"created_at           {stamp(job.created_at)}\n"
        "started_at           \n"
        "finished_at          \n"
        "settled_at           \n"
    )


def test_driver_memory_and_max_runtime_options(dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file, "--driver-memory", "2g", "--max-runtime", "30m")
    assert (job["driver_memory_mb"], job["max_runtime"]) == (2048, 1800)


def test_a_max_runtime_that_is_no_duration_is_refused(dmarket, user, entry_file):
    result = dmarket("jobs", "submit", entry_file, "--max-runtime", "soon")
    assert result.exit_code == 2
    assert "'soon' is not a duration such as 90, 30m, 2h or 1d." in result.stderr


@pytest.mark.parametrize("size, megabytes", [
    ("512m", 512), ("512M", 512), ("512mb", 512), ("4g", 4096), ("4G", 4096), ("2048", 2048),
    ("1.5g", 1536), ("1t", 1048576), ("524288k", 512),
])
def test_executor_memory_units(dmarket_json, user, entry_file, size, megabytes):
    job = submit(dmarket_json, entry_file, "--executor-memory", size)
    assert job["executor_memory_mb"] == megabytes


@pytest.mark.parametrize("size", ["12x", "g", "1.0001g", "-1g", "4 g b"])
def test_bad_executor_memory_is_a_usage_error(dmarket, user, entry_file, size):
    result = dmarket("jobs", "submit", entry_file, "--executor-memory", size)
    assert result.exit_code == 2
    assert "Invalid value for '--executor-memory'" in result.stderr
    assert not Job.objects.exists()


def test_executor_memory_below_the_minimum_is_refused_by_the_server(dmarket, user, entry_file):
    result = dmarket("jobs", "submit", entry_file, "--executor-memory", "256m")
    assert result.exit_code == 1
    assert result.stderr == ("dmarket: executor_memory_mb: Ensure this value is greater than "
                             "or equal to 512.\n")


def test_relative_paths_are_read_from_here(dmarket_json, user, tmp_path, monkeypatch):
    (tmp_path / "app.py").write_text("x")
    monkeypatch.chdir(tmp_path)
    stored = f"dmarket://job-files/{hashlib.sha256(b'x').hexdigest()[:16]}/app.py@1"
    assert submit(dmarket_json, "app.py")["entry_file"] == stored
    assert submit(dmarket_json, "./x/../app.py")["entry_file"] == stored


def test_uris_are_passed_unchanged(dmarket_json, user):
    for uri in ("https://example.org/apps/app.py", "hdfs://nn:8020/a/app.py",
                "gs://bucket/app.py", "s3a://bucket/app.jar"):
        assert submit(dmarket_json, uri)["entry_file"] == uri


def test_the_servers_refusal_of_a_file_is_shown(dmarket, user):
    # local: is a path on every worker: for operators only.
    result = dmarket("jobs", "submit", "local:/opt/app.py")
    assert result.exit_code == 1
    assert result.stderr == ("dmarket: entry_file: 'local:/opt/app.py': only operators may "
                             "name files on the server; put the file into the file store "
                             "(dmarket files put, or let dmarket jobs submit upload it) and "
                             "name it dmarket://NAME\n")


def test_submission_id_retry_returns_the_same_job(dmarket, dmarket_json, user, entry_file):
    args = ("--submission-id", "nightly-7", "--cores", "2", "--", "x")
    first = submit(dmarket_json, entry_file, *args)
    again = submit(dmarket_json, entry_file, *args)
    assert again == first
    assert Job.objects.count() == 1

    result = dmarket("jobs", "submit", entry_file, "--submission-id", "nightly-7")
    assert result.exit_code == 1
    assert result.stderr == (f"dmarket: submission_id 'nightly-7' was already used by job "
                             f"{first['id']} with different fields.\n")


def test_submit_beyond_the_available_credits(dmarket, user, entry_file):
    result = dmarket("jobs", "submit", entry_file, "--max-credits", "150")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == ("dmarket: This job may cost up to 150.000000 credits but only "
                             "100.000000 are available; lower max_credits or wait for running "
                             "jobs to finish.\n")
    assert not Job.objects.exists()


def test_submit_and_watch(dmarket, user, entry_file):
    def run_it():
        while not Job.objects.exists():
            time.sleep(0.01)
        job_id = Job.objects.get().pk
        Job.objects.filter(pk=job_id).update(status=Job.RUNNING, started_at=timezone.now())
        time.sleep(0.3)
        finish(job_id, exit_code=0)

    thread = later(0, run_it)
    result = dmarket("jobs", "submit", entry_file, "--watch", "--json")
    thread.join()
    assert result.exit_code == 0, result.stderr
    job = Job.objects.get()
    # Only the final job is printed with --json.
    body = json.loads(result.stdout)
    assert (body["id"], body["status"], body["exit_code"]) == (job.pk, "SUCCEEDED", 0)
    lines = result.stderr.splitlines()
    assert lines[-1] == f"job {job.pk} (app): SUCCEEDED, cost 0.000000"
    assert f"job {job.pk} (app): RUNNING, cost 0.000000" in lines


@pytest.mark.parametrize("flags", [["--quiet"], ["-q"], ["-q", "--json"]])
def test_submit_quiet_prints_only_the_id(dmarket, user, entry_file, flags):
    result = dmarket("jobs", "submit", entry_file, *flags, "--", "8")
    assert result.exit_code == 0, result.stderr
    job = Job.objects.get()
    assert result.stdout == f"{job.pk}\n"
    assert result.stderr == ""
    assert job.app_params == ["8"]


def test_submit_quiet_and_watch_exits_by_the_jobs_end(dmarket, user, entry_file):
    def fail_it():
        while not Job.objects.exists():
            time.sleep(0.01)
        finish(Job.objects.get().pk, status=Job.FAILED, exit_code=3)

    thread = later(0, fail_it)
    result = dmarket("jobs", "submit", entry_file, "--watch", "-q")
    thread.join()
    assert result.exit_code == 1
    assert result.stdout == f"{Job.objects.get().pk}\n"
    assert result.stderr == ""


def test_submit_sends_spark_properties_and_a_main_class(dmarket_json, user):
    jar = "https://example.org/apps/app.jar"
    job = submit(dmarket_json, jar, "--conf", "spark.sql.shuffle.partitions=8",
                 "--conf", "spark.sql.session.timeZone=Europe/Paris",
                 "--conf", "spark.speculation=false", "--conf", "spark.speculation=true",
                 "--conf", "spark.default.parallelism=", "--conf", "spark.sql.x=a=b c",
                 "--class", "org.example.Main", "--", "in", "out")
    row = Job.objects.get()
    conf = {"spark.sql.shuffle.partitions": "8", "spark.sql.session.timeZone": "Europe/Paris",
            "spark.speculation": "true", "spark.default.parallelism": "", "spark.sql.x": "a=b c"}
    assert (job["conf"], job["main_class"], job["app_params"]) == (
        conf, "org.example.Main", ["in", "out"])
    assert (row.conf, row.main_class, row.entry_file) == (conf, "org.example.Main", jar)


@pytest.mark.parametrize("value", ["spark.sql.shuffle.partitions", "=8", ""])
def test_submit_conf_without_key_and_value_is_a_usage_error(dmarket, user, entry_file, value):
    result = dmarket("jobs", "submit", entry_file, "--conf", value)
    assert result.exit_code == 2
    assert f"Invalid value for '--conf': {value!r} is not KEY=VALUE." in result.stderr
    assert not Job.objects.exists()


def test_submit_conf_the_market_refuses_names_the_property(dmarket, user, entry_file):
    result = dmarket("jobs", "submit", entry_file, "--conf", "spark.executor.memory=8g")
    assert result.exit_code != 0
    assert ("spark.executor.memory: the market sets this property from the job's "
            "executor_memory_mb; use --executor-memory instead") in result.stderr
    assert not Job.objects.exists()


def test_submit_with_gpus(dmarket, dmarket_json, user, entry_file, posted, gpu_machine):
    job = submit(dmarket_json, entry_file, "--gpus-per-executor", "2", "--gpus-per-task", "0.5")

    (body,) = [body for path, body in posted if path == "jobs/"]
    assert (body["gpus_per_executor"], body["gpus_per_task"]) == (2, 0.5)
    # The server's default type: gpu, for a job asking for GPUs.
    assert "machine_type" not in body
    assert (job["gpus_per_executor"], job["gpus_per_task"], job["machine_type"]) == (2, 0.5,
                                                                                     "gpu")
    row = Job.objects.get(pk=job["id"])
    assert (row.gpus_per_executor, float(row.gpus_per_task)) == (2, 0.5)

    shown = dmarket("jobs", "show", job["id"]).stdout.splitlines()
    assert "gpus_per_executor    2" in shown and "gpus_per_task        0.5" in shown
    assert "price_per_gpu_hour   4.000000" in shown
    listed = dmarket("jobs", "list").stdout.splitlines()
    assert listed[0].split()[3:5] == ["CORES", "GPUS/EXECUTOR"]
    assert listed[1].split()[3:5] == ["1", "2"]


def test_submit_a_whole_number_of_gpus_per_task(dmarket, dmarket_json, user, entry_file,
                                                posted, gpu_machine):
    job = submit(dmarket_json, entry_file, "--gpus-per-executor", "2", "--gpus-per-task", "2")

    (body,) = [body for path, body in posted if path == "jobs/"]
    assert body["gpus_per_task"] == 2 and isinstance(body["gpus_per_task"], int)
    assert job["gpus_per_task"] == 2
    assert "gpus_per_task        2" in dmarket("jobs", "show", job["id"]).stdout.splitlines()


def test_submit_without_gpus_sends_and_shows_none(dmarket, dmarket_json, user, entry_file,
                                                  posted):
    job = submit(dmarket_json, entry_file)

    (body,) = [body for path, body in posted if path == "jobs/"]
    assert not {"gpus_per_executor", "gpus_per_task"} & set(body)
    assert (job["gpus_per_executor"], job["gpus_per_task"], job["machine_type"]) == (0, 0,
                                                                                     "cpu")
    assert "gpus_per" not in dmarket("jobs", "show", job["id"]).stdout


@pytest.mark.parametrize("args, message", [
    (["--gpus-per-task", "0"], "Invalid value for '--gpus-per-task'"),
    (["--gpus-per-executor", "-1"], "Invalid value for '--gpus-per-executor'"),
])
def test_submit_bad_gpu_amounts_are_usage_errors(dmarket, user, entry_file, args, message):
    result = dmarket("jobs", "submit", entry_file, *args)

    assert result.exit_code == 2 and message in result.stderr
    assert Job.objects.count() == 0


def test_submit_gpus_the_market_refuses_names_them(dmarket, user, entry_file, gpu_machine):
    result = dmarket("jobs", "submit", entry_file, "--gpus-per-executor", "2",
                     "--gpus-per-task", "0.3")
    assert result.exit_code == 1
    assert result.stderr.startswith("dmarket: gpus_per_task: ")

    result = dmarket("jobs", "submit", entry_file, "--gpus-per-executor", "5")
    assert result.exit_code == 1
    assert result.stderr.startswith("dmarket: gpus_per_executor: Each executor asks for 5")
    assert Job.objects.count() == 0


# --- list, show, cancel -------------------------------------------------------------------

def test_list(dmarket, dmarket_json, user, entry_file):
    first = submit(dmarket_json, entry_file, "--name", "first")
    second = submit(dmarket_json, entry_file, "--name", "second", "--cores", "4")
    finish(first["id"], cost="1.5")
    rows = {job.pk: job for job in Job.objects.all()}

    result = dmarket("jobs", "list")
    assert result.exit_code == 0, result.stderr
    one, two = rows[first["id"]], rows[second["id"]]
    width = max(2, len(str(two.pk)))
    assert result.stdout == (
        f"{'ID'.ljust(width)}  NAME    STATUS     CORES  GPUS/EXECUTOR  COST      CREATED\n"
        f"{str(two.pk).ljust(width)}  second  QUEUED     4      0              0.000000  "
        f"{stamp(two.created_at)}\n"
        f"{str(one.pk).ljust(width)}  first   SUCCEEDED  1      0              1.500000  "
        f"{stamp(one.created_at)}\n"
    )

    listed = dmarket_json("jobs", "list")
    assert [job["id"] for job in listed] == [second["id"], first["id"]]
    assert listed[0] == dmarket_json("jobs", "show", second["id"])
    assert [j["id"] for j in dmarket_json("jobs", "list", "--status", "succeeded")] == [
        first["id"]]
    assert [j["id"] for j in dmarket_json("jobs", "list", "--status", "QUEUED", "--status",
                                          "SUCCEEDED")] == [second["id"], first["id"]]
    assert [j["id"] for j in dmarket_json("jobs", "list", "--limit", "1")] == [second["id"]]

    result = dmarket("--json", "jobs", "list", "--status", "RUNNING")
    assert json.loads(result.stdout) == []


def test_list_follows_pages(dmarket_json, user, entry_file):
    runs = Run.objects.bulk_create([Run(user=user.model, label=f"j{i}") for i in range(520)])
    Job.objects.bulk_create([Job(user=user.model, run=run, name=f"j{i}", entry_file=entry_file)
                             for i, run in enumerate(runs)])
    listed = dmarket_json("jobs", "list", "--limit", "510")
    assert len(listed) == 510
    ids = [job["id"] for job in listed]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 510
    assert len(dmarket_json("jobs", "list", "--limit", "1000")) == 520
    assert len(dmarket_json("jobs", "list")) == 50


def test_list_all_is_for_operators(dmarket, dmarket_json, user, entry_file):
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user("bob", "", "another long password")
    theirs = make_job(user=other, name="theirs", entry_file=entry_file)
    assert dmarket_json("jobs", "list") == []
    result = dmarket("jobs", "list", "--all")
    assert result.exit_code == 1
    assert result.stderr == "dmarket: Only operators may list everyone's objects.\n"

    get_user_model().objects.filter(pk=user.model.pk).update(is_staff=True)
    assert [j["id"] for j in dmarket_json("jobs", "list", "--all")] == [theirs.pk]


def test_bad_status_is_a_usage_error(dmarket, user):
    result = dmarket("jobs", "list", "--status", "DONE")
    assert result.exit_code == 2
    assert "Invalid value for '--status'" in result.stderr


def test_show_someone_elses_job(dmarket, user, entry_file):
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user("bob", "", "another long password")
    theirs = make_job(user=other, name="theirs", entry_file=entry_file)
    for command in ("show", "cancel", "log", "results", "watch", "executors"):
        result = dmarket("jobs", command, theirs.pk)
        assert result.exit_code == 1, command
        assert result.stderr == "dmarket: No Job matches the given query.\n", command


def test_show_needs_a_number(dmarket, user):
    result = dmarket("jobs", "show", "seven")
    assert result.exit_code == 2


def test_cancel(dmarket, dmarket_json, user, entry_file):
    queued = submit(dmarket_json, entry_file)
    result = dmarket("jobs", "cancel", queued["id"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Job {queued['id']}: CANCELLED.\n"

    result = dmarket("jobs", "cancel", queued["id"])
    assert result.exit_code == 1
    assert result.stderr == f"dmarket: Job {queued['id']} has already finished (CANCELLED).\n"

    running = submit(dmarket_json, entry_file)
    Job.objects.filter(pk=running["id"]).update(status=Job.RUNNING)
    result = dmarket("jobs", "cancel", running["id"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Job {running['id']}: cancel requested (RUNNING).\n"

    body = dmarket_json("jobs", "cancel", running["id"])
    assert (body["status"], body["cancel_requested"], body["status_reason"]) == (
        "RUNNING", True, "cancelled by its owner")


def test_cancel_json(dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    body = dmarket_json("jobs", "cancel", job["id"])
    assert (body["id"], body["status"], body["status_reason"]) == (
        job["id"], "CANCELLED", "cancelled by its owner")
    assert body["settled_at"] is not None


# --- log ----------------------------------------------------------------------------------

def driver_log(job_id):
    path = Path(settings.DMARKET_JOBS_DIR) / str(job_id) / "driver.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_log(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    result = dmarket("jobs", "log", job["id"])
    assert result.exit_code == 0 and result.stdout == ""

    log = driver_log(job["id"])
    log.write_bytes(b"one\ntwo \xe2\x9c\x93\nthree, still being writ")
    result = dmarket("jobs", "log", job["id"])
    assert result.exit_code == 0, result.stderr
    # The unfinished line waits while the job runs.
    assert result.stdout == "one\ntwo \u2713\n"
    result = dmarket("jobs", "log", job["id"], "--from", "4")
    assert result.stdout == "two \u2713\n"
    assert dmarket_json("jobs", "log", job["id"]) == {
        "lines": ["one", "two \u2713"], "offset": 0, "next": 12, "ended": False,
        "status": "QUEUED"}

    finish(job["id"], status=Job.FAILED)
    result = dmarket("jobs", "log", job["id"])
    assert result.stdout == "one\ntwo \u2713\nthree, still being writ\n"
    assert dmarket_json("jobs", "log", job["id"], "--from", "12") == {
        "lines": ["three, still being writ"], "offset": 12, "next": 35, "ended": True,
        "status": "FAILED"}

    result = dmarket("jobs", "log", job["id"], "--from", "99")
    assert result.exit_code == 1
    assert result.stderr == "dmarket: from: Beyond the end of the log (35 bytes).\n"


def test_log_longer_than_a_page(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    lines = [f"line {i}" for i in range(25000)]
    driver_log(job["id"]).write_text("".join(f"{line}\n" for line in lines))
    result = dmarket("jobs", "log", job["id"])
    assert result.stdout.splitlines() == lines
    assert dmarket_json("jobs", "log", job["id"])["lines"] == lines


def test_log_follow(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    log = driver_log(job["id"])
    log.write_text("starting\n")

    def driver():
        with open(log, "a") as f:
            for i in range(3):
                time.sleep(0.15)
                f.write(f"step {i}\n")
                f.flush()
            f.write("done")  # its last line has no newline
        time.sleep(0.15)
        finish(job["id"])

    thread = later(0, driver)
    started = time.monotonic()
    result = dmarket("jobs", "log", job["id"], "--follow")
    thread.join()
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "starting\nstep 0\nstep 1\nstep 2\ndone\n"
    assert time.monotonic() - started >= 0.6


def test_log_follow_json(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    driver_log(job["id"]).write_text("a\nb\n")
    thread = later(0.2, lambda: finish(job["id"]))
    result = dmarket("jobs", "log", job["id"], "--follow", "--json")
    thread.join()
    assert result.exit_code == 0
    pages = [json.loads(line) for line in result.stdout.splitlines()]
    assert pages[0] == {"lines": ["a", "b"], "offset": 0, "next": 4, "ended": False,
                        "status": "QUEUED"}
    assert pages[-1] == {"lines": [], "offset": 4, "next": 4, "ended": True,
                         "status": "SUCCEEDED"}


def test_log_follow_of_a_finished_job_returns_at_once(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    finish(job["id"])
    result = dmarket("jobs", "log", job["id"], "-f")
    assert result.exit_code == 0 and result.stdout == ""


# --- results ------------------------------------------------------------------------------

def write_results(job_id):
    out = Path(settings.DMARKET_JOBS_DIR) / str(job_id) / "output"
    (out / "model" / "weights").mkdir(parents=True)
    files = {
        "metrics.json": b'{"accuracy": 0.99}\n',
        "model/weights/part 1#.bin": os.urandom(3 * 1024 * 1024 + 17),
        "model/empty": b"",
    }
    for path, data in files.items():
        (out / path).write_bytes(data)
    return files


def test_results_list(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    assert dmarket_json("jobs", "results", job["id"]) == []
    files = write_results(job["id"])
    listed = dmarket_json("jobs", "results", job["id"])
    assert [(f["path"], f["size"]) for f in listed] == [
        ("metrics.json", 19), ("model/empty", 0), ("model/weights/part 1#.bin", 3145745)]
    assert sorted(files) == [f["path"] for f in listed]

    result = dmarket("jobs", "results", job["id"])
    out = Path(settings.DMARKET_JOBS_DIR) / str(job["id"]) / "output"
    mtime = {p: stamp(datetime.fromtimestamp((out / p).stat().st_mtime, tz=dt_timezone.utc))
             for p in files}
    assert result.stdout == (
        "PATH                       SIZE     MODIFIED\n"
        f"metrics.json               19       {mtime['metrics.json']}\n"
        f"model/empty                0        {mtime['model/empty']}\n"
        f"model/weights/part 1#.bin  3145745  {mtime['model/weights/part 1#.bin']}\n"
    )


def test_results_download(dmarket, dmarket_json, user, entry_file, tmp_path, monkeypatch):
    job = submit(dmarket_json, entry_file)
    files = write_results(job["id"])
    monkeypatch.chdir(tmp_path)
    result = dmarket("jobs", "results", job["id"], "--download", "fetched")
    assert result.exit_code == 0, result.stderr
    root = tmp_path / "fetched"
    got = {p.relative_to(root).as_posix(): p.read_bytes()
           for p in root.rglob("*") if p.is_file()}
    assert got == files
    assert result.stderr == ""  # no progress display when stderr is not a terminal
    assert result.stdout.splitlines()[0].split() == ["PATH", "SIZE", "MODIFIED", "SAVED", "AS"]
    assert "fetched/model/weights/part 1#.bin" in result.stdout

    # Again, as JSON, into a directory that already holds the files: they are replaced.
    (root / "metrics.json").write_text("stale")
    listed = dmarket_json("jobs", "results", job["id"], "--download", str(root))
    assert [(f["path"], f["local_path"]) for f in listed] == [
        (path, str(root / path)) for path in sorted(files)]
    assert (root / "metrics.json").read_bytes() == files["metrics.json"]
    assert not list(root.rglob("*.part"))


def test_results_download_progress_on_a_terminal(dmarket, dmarket_json, user, entry_file,
                                                 tmp_path, monkeypatch):
    from dmarket_client import cli_shared

    monkeypatch.setattr(cli_shared, "stderr_is_tty", lambda: True)
    job = submit(dmarket_json, entry_file)
    write_results(job["id"])
    result = dmarket("jobs", "results", job["id"], "--download", tmp_path / "fetched")
    assert result.exit_code == 0, result.stderr
    big = "model/weights/part 1#.bin  {} MB of 3.0 MB ({}%)"
    last = big.format("3.0", 100)
    small = "metrics.json  19 B of 19 B (100%)"
    assert result.stderr == (
        "\r" + small + "\r" + " " * len(small) + "\r"
        # (the empty file has no progress to show)
        + "\r" + big.format("1.0", 33) + "\r" + big.format("2.0", 66)
        + "\r" + big.format("3.0", 99) + "\r" + last + "\r" + " " * len(last) + "\r"
    )


def test_results_refuses_paths_that_leave_the_directory(tmp_path):
    from dmarket_client.cli import download_target

    assert download_target(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"
    assert download_target(tmp_path, "./x") == tmp_path / "x"
    for bad in ("../x", "a/../../x", "/etc/passwd", ""):
        assert download_target(tmp_path, bad) is None, bad


# --- watch --------------------------------------------------------------------------------

def test_watch_a_succeeded_job(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file, "--name", "pi")
    finish(job["id"], exit_code=0, cost="0.25")
    result = dmarket("jobs", "watch", job["id"])
    assert result.exit_code == 0
    assert result.stderr == f"job {job['id']} (pi): SUCCEEDED, cost 0.250000\n"
    assert "status               SUCCEEDED\n" in result.stdout
    assert "cost                 0.250000\n" in result.stdout


def test_watch_a_failed_job(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file, "--name", "pi")
    finish(job["id"], status=Job.FAILED, exit_code=3, status_reason="driver exited with 3")
    result = dmarket("jobs", "watch", job["id"], "--json")
    assert result.exit_code == 1
    assert result.stderr == (f"job {job['id']} (pi): FAILED (driver exited with 3), "
                             "cost 0.000000\n")
    body = json.loads(result.stdout)
    assert (body["status"], body["exit_code"]) == ("FAILED", 3)


def test_watch_a_cancelled_job(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file, "--name", "pi")
    assert dmarket("jobs", "cancel", job["id"]).exit_code == 0
    result = dmarket("jobs", "watch", job["id"])
    assert result.exit_code == 1
    assert result.stderr == (f"job {job['id']} (pi): CANCELLED (cancelled by its owner), "
                             "cost 0.000000\n")


def test_watch_waits_for_the_bill(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file, "--name", "pi")
    Job.objects.filter(pk=job["id"]).update(status=Job.RUNNING)

    from django.db import transaction

    def driver():
        finish(job["id"], settled=False, exit_code=0)
        time.sleep(0.3)
        # Posted and settled at once, as billing does.
        with transaction.atomic():
            charge(job["id"], "0.5")
            Job.objects.filter(pk=job["id"]).update(settled_at=timezone.now())

    thread = later(0.3, driver)
    result = dmarket("jobs", "watch", job["id"])
    thread.join()
    assert result.exit_code == 0
    assert result.stderr == (f"job {job['id']} (pi): RUNNING, cost 0.000000\n"
                             f"job {job['id']} (pi): SUCCEEDED, cost 0.000000, settling the bill\n"
                             f"job {job['id']} (pi): SUCCEEDED, cost 0.500000\n")


def test_watch_on_a_terminal_redraws_one_line(dmarket, dmarket_json, user, entry_file,
                                             monkeypatch):
    from dmarket_client import cli_shared

    monkeypatch.setattr(cli_shared, "stderr_is_tty", lambda: True)
    job = submit(dmarket_json, entry_file, "--name", "pi")
    thread = later(0.3, lambda: finish(job["id"], status=Job.LOST, status_reason="gone"))
    result = dmarket("jobs", "watch", job["id"])
    thread.join()
    assert result.exit_code == 1
    assert result.stderr == (f"\rjob {job['id']} (pi): QUEUED, cost 0.000000"
                             f"\rjob {job['id']} (pi): LOST (gone), cost 0.000000\n")


# --- executors ----------------------------------------------------------------------------

class FakeHistoryServer(BaseHTTPRequestHandler):
    """A Spark history server's REST API, for one finished application."""

    routes = {
        "/api/v1/applications/app-1": {
            "id": "app-1", "attempts": [{"completed": True,
                                         "endTime": "2026-11-22T08:01:00.000GMT"}]},
        "/api/v1/applications/app-1/allexecutors": [
            {"id": "driver", "hostPort": "10.0.0.1:4040", "totalCores": 0,
             "addTime": "2026-11-22T08:00:00.000GMT"},
            {"id": "0", "hostPort": "10.0.0.5:40000", "totalCores": 2,
             "addTime": "2026-11-22T08:00:00.000GMT",
             "removeTime": "2026-11-22T08:00:30.500GMT", "removeReason": "worker lost",
             "executorLogs": {"stderr": "http://10.0.0.5:8081/logPage/?appId=app-1"
                                        "&executorId=0&logType=stderr"}},
            {"id": "1", "hostPort": "10.0.0.6:40000", "totalCores": 1,
             "addTime": "2026-11-22T08:00:10.000GMT"},
        ],
    }

    def do_GET(self):
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def history_server(settings):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeHistoryServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    settings.DMARKET_HISTORY_URL = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield
    httpd.shutdown()
    httpd.server_close()


def test_executors(dmarket, dmarket_json, user, entry_file, history_server):
    from dmarket.machines.models import Machine

    job = submit(dmarket_json, entry_file)
    assert dmarket_json("jobs", "executors", job["id"]) == []
    result = dmarket("jobs", "executors", job["id"])
    assert result.stdout == "ID  HOST  MACHINE  CORES  STARTED  ENDED  CORE-SECONDS\n"

    machine = Machine.objects.create(user=user.model, cores=4, memory_mb=4096,
                                     address="10.0.0.5")
    finish(job["id"], spark_app_id="app-1")
    rows = dmarket_json("jobs", "executors", job["id"])
    assert rows == [
        {"id": "0", "host": "10.0.0.5", "machine": machine.pk, "cores": 2,
         "started_at": "2026-11-22T08:00:00Z", "ended_at": "2026-11-22T08:00:30.500000Z",
         "end_reason": "worker lost", "core_seconds": "61.000",
         "logs": {"stderr": f"/api/jobs/{job['id']}/executors/0/log/?type=stderr"}},
        {"id": "1", "host": "10.0.0.6", "machine": None, "cores": 1,
         "started_at": "2026-11-22T08:00:10Z", "ended_at": "2026-11-22T08:01:00Z",
         "end_reason": "", "core_seconds": "50.000", "logs": {}},
    ]
    result = dmarket("jobs", "executors", job["id"])
    m = str(machine.pk).ljust(7)
    assert result.stdout == (
        "ID  HOST      MACHINE  CORES  STARTED                  ENDED"
        "                    CORE-SECONDS\n"
        f"0   10.0.0.5  {m}  2      2026-11-22 08:00:00 UTC  2026-11-22 08:00:30 UTC  61.000\n"
        f"1   10.0.0.6  {'':7}  1      2026-11-22 08:00:10 UTC  2026-11-22 08:01:00 UTC  50.000\n"
    )


def test_executors_without_a_history_server(dmarket, dmarket_json, user, entry_file):
    job = submit(dmarket_json, entry_file)
    finish(job["id"], spark_app_id="app-1")
    result = dmarket("jobs", "executors", job["id"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "dmarket: The Spark history server does not answer: http://127.0.0.1:9/api/v1/"
        "applications/app-1: ")


def test_help(dmarket):
    for command in ("submit", "list", "show", "cancel", "log", "results", "watch",
                    "executors"):
        result = dmarket("jobs", command, "--help")
        assert result.exit_code == 0 and result.stdout.startswith(
            f"Usage: dmarket jobs {command} "), command
