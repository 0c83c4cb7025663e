"""The police (dmarket.cluster.police), fast: the master's and the workers' JSON as they
answer, and real processes and sockets on this host standing for a job's sandbox."""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from dmarket.cluster import police, spark
from dmarket.cluster.billing import job_settle
from dmarket.cluster.models import PolicedApp
from dmarket.credits.models import LedgerEntry, UsageRecord
from dmarket.credits.services import credits_grant, run_hold
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db


def app(app_id, user, start=1000, cores=2):
    return {"id": app_id, "user": user, "name": "innocent", "starttime": start, "cores": cores}


@pytest.fixture
def killed(monkeypatch, settings, tmp_path):
    settings.DMARKET_INFERENCE_DIR = tmp_path
    settings.DMARKET_LAUNCHER_ID = "here"
    settings.DMARKET_SPARK_MASTER_URL = "spark://127.0.0.1:7077"
    found = []
    monkeypatch.setattr(spark, "master_kill_app", found.append)
    monkeypatch.setattr(police, "worker_executors",
                        lambda workers, ids: {i: [] for i in ids})
    return found


def a_job(user, entry_file, **fields):
    return make_job(user=user, name="j", entry_file=entry_file,
                    price_per_core_hour=1, launcher="here", **fields)


def test_the_police_kills_what_is_no_running_jobs_application_once_past_the_grace(
        make_user, entry_file, killed, tmp_path, settings):
    settings.DMARKET_APP_GRACE = 3
    (tmp_path / "app_id").write_text("app-inference")
    job = a_job(make_user("alice"), entry_file, status=Job.RUNNING, spark_app_id="app-mine")
    young = (time.time() - 1) * 1000
    state = {"activeapps": [app("app-mine", job.tag), app("app-inference", "root"),
                            app("app-rogue", "root"), app("app-finished-job", "x"),
                            app("app-new", "root", young)]}

    assert police.cluster_police(state) == 2
    assert killed == ["app-rogue", "app-finished-job"]
    assert sorted(PolicedApp.objects.values_list("app_id", "job", "reason")) == [
        ("app-finished-job", None, "no running job's verified application"),
        ("app-rogue", None, "no running job's verified application")]


def test_a_starting_jobs_own_application_gets_the_longer_grace_to_be_verified(
        make_user, entry_file, killed, settings):
    settings.DMARKET_APP_GRACE, settings.DMARKET_APP_VERIFY_GRACE = 3, 10
    job = a_job(make_user("alice"), entry_file, status=Job.STARTING)
    five_s = (time.time() - 5) * 1000
    state = {"activeapps": [app("app-starting", job.tag, five_s),
                            app("app-other", "dmarket-job-999999", five_s)]}

    police.cluster_police(state)

    assert killed == ["app-other"]


def test_an_application_is_recorded_once_however_often_it_is_seen(
        make_user, entry_file, killed):
    state = {"activeapps": [app("app-rogue", "root")]}

    police.cluster_police(state)
    police.cluster_police(state)

    # Killed again while the master still lists it, recorded once.
    assert killed == ["app-rogue", "app-rogue"]
    assert PolicedApp.objects.count() == 1


@pytest.fixture
def sandbox_of():
    """sandbox_of(job): a process standing for the job's driver sandbox (its wrapper names
    the job's directory, as the real one does): it listens on a port (a driver's RPC
    endpoint) and keeps two connections to a "master" port. Returns (port, master port)."""
    master = socket.socket()
    master.bind(("127.0.0.1", 0))
    master.listen()
    children = []
    code = ("import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "c = [socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in range(2)]\n"
            "print(s.getsockname()[1], flush=True); time.sleep(60)\n")

    def start(job):
        job.work_dir.mkdir(parents=True, exist_ok=True)
        child = subprocess.Popen([sys.executable, "-c", code, str(master.getsockname()[1]),
                                  str(job.work_dir)], stdout=subprocess.PIPE, text=True)
        children.append(child)
        Job.objects.filter(pk=job.pk).update(driver_pid=child.pid)
        job.refresh_from_db()
        return int(child.stdout.readline()), master.getsockname()[1]

    yield start
    for child in children:
        child.kill()
        child.wait()
    master.close()


def test_an_application_whose_driver_listens_in_a_jobs_sandbox_fails_that_job(
        make_user, entry_file, killed, monkeypatch, sandbox_of, settings):
    owner = make_user("carol")
    machine = Machine.objects.create(user=owner, cores=2, memory_mb=1024, address="127.0.0.2",
                                     state=Machine.ONLINE, worker_id="worker-1")
    alice = make_user("alice")
    credits_grant(alice, 100, "grant:test")
    job = a_job(alice, entry_file, status=Job.RUNNING, spark_app_id="app-mine", max_credits=10)
    run_hold(job.run, job.run.label)
    port, master_port = sandbox_of(job)
    settings.DMARKET_SPARK_MASTER_URL = f"spark://127.0.0.1:{master_port}"
    # Its pid is no wrapper of its (pid 1 is every process's ancestor).
    innocent = a_job(make_user("bob"), entry_file, status=Job.RUNNING, spark_app_id="app-b",
                     driver_pid=1)
    monkeypatch.setattr(police, "worker_executors", lambda workers, ids: {
        "app-rogue": [{"worker": "worker-1", "host": "127.0.0.2", "executor": "0",
                       "driver": f"127.0.0.1:{port}"}]})
    started = (time.time() - 4) * 1000
    state = {"activeapps": [app("app-mine", job.tag), app("app-b", innocent.tag),
                            app("app-rogue", "nobody", started, cores=2)]}

    police.cluster_police(state)

    job.refresh_from_db()
    innocent.refresh_from_db()
    record = PolicedApp.objects.get()
    assert (record.app_id, record.job, record.driver_address) == (
        "app-rogue", job, f"127.0.0.1:{port}")
    assert record.executors == [{"worker": "worker-1", "host": "127.0.0.2", "executor": "0",
                                 "cores": 2, "gpus": 0}]
    assert (job.cancel_requested, job.stop_status, job.status_reason) == (
        True, Job.FAILED, "the job started a second Spark application (app-rogue), which the "
                          "market killed; what it ran is billed to this job")
    assert not innocent.cancel_requested
    assert "dmarket: application app-rogue killed" in job.log_path.read_text()

    # Settled: its executor's 2 cores from the application's start to its kill, paid to the
    # machine's owner.
    Job.objects.filter(pk=job.pk).update(status=Job.FAILED, finished_at=record.killed_at,
                                         spark_app_id="")
    job.refresh_from_db()
    assert job_settle(job, workers=[])
    span_ms = (record.killed_at - record.started_at) // timedelta(milliseconds=1)
    charge = LedgerEntry.objects.get(kind=LedgerEntry.CHARGE)
    earning = LedgerEntry.objects.get(kind=LedgerEntry.EARNING)
    usage = UsageRecord.objects.get(run=job.run)
    assert (usage.key, usage.core_ms, usage.posted_key) == ("policed:app-rogue:0", 2 * span_ms,
                                                            charge.key)
    assert charge.memo == (f"job {job.pk} on machine {machine.pk}: usage policed:app-rogue:0, "
                           f"{2 * span_ms} core-ms")
    assert (earning.user, earning.machine, earning.amount) == (owner, machine, -charge.amount)


def test_without_executors_a_sandbox_with_a_second_master_connection_is_the_drivers(
        make_user, entry_file, killed, settings, sandbox_of):
    job = a_job(make_user("alice"), entry_file, status=Job.RUNNING, spark_app_id="app-mine")
    _, master_port = sandbox_of(job)
    settings.DMARKET_SPARK_MASTER_URL = f"spark://127.0.0.1:{master_port}"

    police.cluster_police({"activeapps": [app("app-rogue", "nobody")]})

    assert PolicedApp.objects.get().job == job
    job.refresh_from_db()
    assert job.stop_status == Job.FAILED


def test_the_sandbox_is_read_before_the_kill_closes_the_drivers_connections(
        make_user, entry_file, killed, monkeypatch, settings, sandbox_of):
    """A killed driver drops its connections to the master at once, before any executor of
    its may have registered: which sandbox held them is read before the kill."""
    job = a_job(make_user("alice"), entry_file, status=Job.RUNNING, spark_app_id="app-mine")
    _, master_port = sandbox_of(job)
    settings.DMARKET_SPARK_MASTER_URL = f"spark://127.0.0.1:{master_port}"

    def kill(app_id):
        # As the master's kill ends the driver: its process, and so its sockets, gone.
        os.kill(job.driver_pid, signal.SIGKILL)
        stat = Path(f"/proc/{job.driver_pid}/stat")
        while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
    monkeypatch.setattr(spark, "master_kill_app", kill)

    police.cluster_police({"activeapps": [app("app-rogue", "nobody")]})

    assert PolicedApp.objects.get().job == job
    job.refresh_from_db()
    assert job.stop_status == Job.FAILED


def test_an_application_from_no_sandbox_of_this_launcher_fails_no_job(
        make_user, entry_file, killed, monkeypatch, sandbox_of):
    job = a_job(make_user("alice"), entry_file, status=Job.RUNNING, spark_app_id="app-mine")
    sandbox_of(job)
    monkeypatch.setattr(police, "worker_executors", lambda workers, ids: {
        "app-rogue": [{"worker": "w", "host": "h", "executor": "0",
                       "driver": "203.0.113.9:1"}]})

    police.cluster_police({"activeapps": [app("app-rogue", "nobody")]})

    assert PolicedApp.objects.get().job is None
    job.refresh_from_db()
    assert not job.cancel_requested


def test_an_address_alone_blames_no_job(make_user, entry_file, killed, monkeypatch,
                                        sandbox_of):
    """A driver elsewhere advertising a job's driver port as its own: that job's sandbox holds
    no second connection to the master, so it is not the driver's."""
    job = a_job(make_user("alice"), entry_file, status=Job.RUNNING, spark_app_id="app-mine")
    port, _ = sandbox_of(job)   # its connections go to a port that is not the master's
    monkeypatch.setattr(police, "worker_executors", lambda workers, ids: {
        "app-rogue": [{"worker": "w", "host": "h", "executor": "0",
                       "driver": f"127.0.0.1:{port}"}]})

    police.cluster_police({"activeapps": [app("app-rogue", "nobody")]})

    assert PolicedApp.objects.get().job is None
    job.refresh_from_db()
    assert not job.cancel_requested


def test_cluster_mode_drivers_are_killed_and_recorded(killed, monkeypatch):
    drivers = []
    monkeypatch.setattr(spark, "master_kill_driver", drivers.append)
    state = {"activeapps": [], "activedrivers": [
        {"id": "driver-20261203-0001", "mainclass": "org.example.Mine"}, "junk"]}

    assert police.cluster_police(state) == 1
    assert drivers == ["driver-20261203-0001"]
    assert list(PolicedApp.objects.values_list("app_id", "name", "reason")) == [
        ("driver-20261203-0001", "org.example.Mine",
         "a driver submitted in cluster mode (the market runs none)")]


def test_the_cores_of_an_application_are_split_over_its_executors_none_lost():
    executors = [{}, {}, {}]
    police.split_cores(5, executors)
    assert [e["cores"] for e in executors] == [2, 2, 1]


COMMAND = ("Command(org.apache.spark.executor.CoarseGrainedExecutorBackend,List("
           "--driver-url, spark://CoarseGrainedScheduler@192.0.2.2:46613, --executor-id, "
           "{{EXECUTOR_ID}}),Map(),List())")


@pytest.fixture
def worker_ui():
    """A real HTTP server standing for workers' UIs: answers(path) -> (delay per byte, body)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            delay, body = answers.get(self.path.split("/json/")[0], (0, b"{}"))
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 1 if delay else len(body)):
                    self.wfile.write(body[i:i + (1 if delay else len(body))])
                    self.wfile.flush()
                    time.sleep(delay)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Polled every 10 ms: shutdown() waits for a poll (0.5 s by default).
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, answers
    server.shutdown()


def test_worker_executors_reads_the_driver_from_the_executors_command_line(worker_ui):
    base, answers = worker_ui
    answers["/w1"] = (0, {"executors": [
        {"id": 0, "appid": "app-1", "appdesc": {"command": COMMAND},
         # What the worker's JSON says its executor holds: billed to the job that started it.
         "resources": {"gpu": {"name": "gpu", "addresses": ["0", "1"]}}},
        {"id": 3, "appid": "app-other", "appdesc": {}}]})
    workers = [{"id": "w1", "host": "127.0.0.2", "webuiaddress": base + "/w1", "coresused": 1},
               {"id": "w2", "host": "127.0.0.3", "webuiaddress": base + "/w2", "coresused": 0}]

    assert police.worker_executors(workers, ["app-1"]) == {"app-1": [
        {"worker": "w1", "host": "127.0.0.2", "executor": "0", "driver": "192.0.2.2:46613",
         "gpus": 2}]}


def test_a_worker_answering_slowly_or_wrongly_neither_stalls_nor_breaks_the_police(worker_ui):
    base, answers = worker_ui
    answers["/slow"] = (0.2, {"executors": [{"id": 1, "appid": "app-1"}]})
    answers["/list"] = (0, [1, 2])
    answers["/junk"] = (0, {"executors": [1, {"appid": ["x"]}, {"appid": "app-1", "id": "e" * 500,
                                                                "appdesc": "str",
                                                                "resources": {"gpu": [1]}}]})
    answers["/bytes"] = (0, b"\x00not json")
    workers = [{"id": name, "host": "h", "webuiaddress": base + "/" + name, "coresused": 1}
               for name in ("slow", "list", "junk", "bytes")] + ["junk", {"coresused": 1}]

    started = time.monotonic()
    found = police.worker_executors(workers, ["app-1"])

    assert time.monotonic() - started < police.WORKER_JSON_SECONDS + 1
    assert found == {"app-1": [{"worker": "junk", "host": "h", "executor": "e" * 40,
                                "driver": "", "gpus": 0}]}
