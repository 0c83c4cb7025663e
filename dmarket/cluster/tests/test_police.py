"""The police (dmarket.cluster.police), fast: the master's and the workers' JSON as they
answer, and real processes and sockets on this host standing for a job's sandbox."""

import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from dmarket.cluster import police, spark
from dmarket.cluster.billing import job_settle
from dmarket.cluster.models import PolicedApp
from dmarket.credits.models import LedgerEntry
from dmarket.credits.services import credits_grant, job_hold
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

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
    return Job.objects.create(user=user, name="j", entry_file=entry_file,
                              price_per_core_hour=1, launcher="here", **fields)


def test_the_police_kills_what_is_no_running_jobs_application_once_past_the_grace(
        make_user, entry_file, killed, tmp_path):
    (tmp_path / "app_id").write_text("app-inference")
    job = a_job(make_user("alice"), entry_file, status=Job.RUNNING, spark_app_id="app-mine")
    young = (time.time() - 2) * 1000
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
        make_user, entry_file, killed, monkeypatch, sandbox_of):
    owner = make_user("carol")
    machine = Machine.objects.create(user=owner, cores=2, memory_mb=1024, address="127.0.0.2",
                                     state=Machine.ONLINE, worker_id="worker-1")
    alice = make_user("alice")
    credits_grant(alice, 100, "grant:test")
    job = a_job(alice, entry_file, status=Job.RUNNING, spark_app_id="app-mine", max_credits=10)
    job_hold(job)
    port, _ = sandbox_of(job)
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
                                 "cores": 2}]
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
    assert charge.key == f"charge:job:{job.pk}:policed:app-rogue:0"
    assert charge.memo == f"job {job.pk}, executor policed:app-rogue:0, {2 * span_ms} core-ms"
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


def test_worker_executors_reads_the_driver_from_the_executors_command_line(monkeypatch):
    command = ("Command(org.apache.spark.executor.CoarseGrainedExecutorBackend,List("
               "--driver-url, spark://CoarseGrainedScheduler@192.0.2.2:46613, --executor-id, "
               "{{EXECUTOR_ID}}),Map(),List())")

    class Answer:
        @staticmethod
        def json():
            return {"executors": [{"id": 0, "appid": "app-1", "appdesc": {"command": command}},
                                  {"id": 3, "appid": "app-other", "appdesc": {}}]}

    asked = []
    monkeypatch.setattr(police.requests, "get", lambda url, timeout: asked.append(url) or Answer)
    workers = [{"id": "w1", "host": "127.0.0.2", "webuiaddress": "http://127.0.0.2:8081",
                "coresused": 1},
               {"id": "w2", "host": "127.0.0.3", "webuiaddress": "http://127.0.0.3:8081",
                "coresused": 0}]

    assert police.worker_executors(workers, ["app-1"]) == {"app-1": [
        {"worker": "w1", "host": "127.0.0.2", "executor": "0", "driver": "192.0.2.2:46613"}]}
    # Only the workers that run something are asked.
    assert asked == ["http://127.0.0.2:8081/json/"]


def test_the_inference_servers_application_gets_the_longer_grace_until_it_records_its_id(
        make_user, entry_file, killed, settings, tmp_path):
    settings.DMARKET_APP_GRACE, settings.DMARKET_APP_VERIFY_GRACE = 3, 10
    five_s = (time.time() - 5) * 1000
    state = {"activeapps": [app("app-inference", police.INFERENCE_USER, five_s)]}

    police.cluster_police(state)
    assert killed == []

    # Once it has recorded its id, another application showing its user is no longer spared.
    (tmp_path / "app_id").write_text("app-inference")
    state["activeapps"].append(app("app-impostor", police.INFERENCE_USER, five_s))
    police.cluster_police(state)
    assert killed == ["app-impostor"]
