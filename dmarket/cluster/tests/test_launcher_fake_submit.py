"""The launcher's fast tier: real launcher passes (launcher_tick) and real drivers, started
through the real wrapper (dmarket/cluster/wrapper.py), but the driver is a fake spark-submit
(fake_spark/bin/spark-submit: no Java, no Spark) that does what its job's last parameter says.
What test_launcher.py shows on a real cluster in minutes: a job followed to its end, a cancel
(SIGTERM, then SIGKILL after DMARKET_CANCEL_GRACE), a driver that vanishes, the max runtime
and the credit cap, each in a second or two.

The sandbox is off (DMARKET_SANDBOX=off: no bubblewrap, no firewall rules, any user); the
master is a dict (launcher.master_state patched), the history server the fake HTTP one of
test_billing_pass.py where billing needs it."""

import json
import os
import shutil
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from dmarket.cluster import launcher, sandbox
from dmarket.cluster.billing import billing_tick
from dmarket.cluster.launcher import launcher_tick
from dmarket.cluster.testing import wait_for
from dmarket.cluster.wrapper import group_members
from dmarket.credits.tests.test_ledger import make_machine
from dmarket.jobs.models import Job
from dmarket.jobs.services import job_cancel
from dmarket.jobs.tests.util import credits_of, ledger_kinds, submitted

from .test_billing_pass import FakeHistory, ended_executor

pytestmark = pytest.mark.django_db

FAKE_SUBMIT = Path(__file__).parent / "fake_spark" / "bin" / "spark-submit"
# How long any one wait of these tests may take: every one ends in a second or two.
WAIT = 8.0


class FakeMaster:
    """The standalone master's /json/ as launcher.master_state returns it: None (no master)
    until a test gives it applications."""

    def __init__(self):
        self.state = None

    def show(self, app_id, user):
        self.state = {"workers": [], "activedrivers": [], "completedapps": [],
                      "activeapps": [{"id": app_id, "user": user, "name": user,
                                      "starttime": int(time.time() * 1000)}]}

    def __call__(self):
        return self.state


@pytest.fixture
def fake_spark(settings, tmp_path, monkeypatch):
    """spark-submit is the fake (copied into a Spark home of the test's own), the sandbox is
    off, nothing answers at the master's and history server's URLs, cancels have 1 s of grace.
    Every wrapper started is SIGKILLed with its process group at the end."""
    home = tmp_path / "spark"
    (home / "bin").mkdir(parents=True)
    shutil.copy(FAKE_SUBMIT, home / "bin" / "spark-submit")
    (home / "bin" / "spark-submit").chmod(0o755)
    settings.DMARKET_SPARK_HOME = str(home)
    settings.DMARKET_SANDBOX = "off"
    settings.DMARKET_SPARK_MASTER_URL = "spark://127.0.0.1:7077"
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:9"
    settings.DMARKET_HISTORY_URL = "http://127.0.0.1:9"
    settings.DMARKET_EVENT_LOG_DIR = tmp_path / "history"
    settings.DMARKET_LAUNCHER_ID = f"fake-{tmp_path.name}"
    settings.DMARKET_CANCEL_GRACE = 1.0
    master = FakeMaster()
    monkeypatch.setattr(launcher, "master_state", master)
    # This test's drivers only, whatever earlier tests left in the launcher's memory.
    monkeypatch.setattr(launcher, "_children", {})
    monkeypatch.setattr(launcher, "_term_sent", {})
    monkeypatch.setattr(launcher, "_kill_sent", {})
    monkeypatch.setattr(launcher, "_disk_checked", {})
    started = []
    popen = sandbox.popen

    def recording(*args, **kwargs):
        child = popen(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(sandbox, "popen", recording)
    yield master
    for child in started:
        # The wrapper started a session of its own: its pid is its process group's.
        for pid in group_members(child.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        child.wait(timeout=5)


def submit(user, entry_file, steps, **fields):
    """A job whose fake driver runs `steps` (its last parameter)."""
    return submitted(user, entry_file, app_params=[*fields.pop("app_params", []), steps],
                     **fields)


def started(job):
    """The job's driver started by this launcher pass."""
    assert launcher_tick() == 1
    job.refresh_from_db()
    assert job.status == Job.STARTING and job.driver_pid is not None, job.status_reason
    return job


def driver_log(job):
    try:
        return job.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no driver log)"


def fake_record(job, children=0):
    """What the fake spark-submit wrote once up (and with `children` started)."""
    path = job.home_dir / "fake-submit.json"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            record = None
        if record is not None and len(record["children"]) >= children:
            return record
        time.sleep(0.02)
    raise AssertionError(f"the fake driver of job {job.pk} did not come up:\n{driver_log(job)}")


def drive(job, until=lambda job: job.is_finished, timeout=WAIT):
    """Launcher passes, as the daemon makes them, until until(job) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher_tick()
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} is {job.status} ({job.status_reason!r}) after "
                         f"{timeout} s; driver log:\n{driver_log(job)}")


def settle(job, owner):
    """The billing daemon's pass that settles the ended job: its hold released."""
    assert job.settled_at is None
    assert billing_tick() == 1
    job.refresh_from_db()
    assert job.settled_at is not None
    assert credits_of(owner)["held"] == "0.000000"
    return job


@pytest.mark.parametrize("code, status", [(0, Job.SUCCEEDED), (3, Job.FAILED)])
def test_a_driver_is_followed_to_its_exit_code_and_the_job_settled(
        fake_spark, alice, entry_file, code, status):
    job = started(submit(alice, entry_file, f"sleep 0.2; exit {code}"))

    job = drive(job)

    assert (job.status, job.exit_code, job.status_reason) == (
        status, code, f"the driver exited with code {code}")
    # The wrapper wrote it (the fake driver never writes into the job's directory).
    assert (job.work_dir / "exit_code").read_text() == f"{code}\n"
    assert launcher.read_exit_code(job) == code
    assert not (job.work_dir / "exit_code.tmp").exists()
    assert group_members(job.driver_pid) == []
    assert job.driver_pid not in launcher._children
    # The launcher records the end; billing settles it, and nothing ran on the cluster.
    settle(job, alice)
    assert job.run.cost == Decimal(0)
    assert ledger_kinds(alice) == ["grant", "hold", "release"]


def test_the_driver_gets_spark_submits_argv_and_the_jobs_environment(
        fake_spark, alice, entry_file, settings):
    job = started(submit(alice, entry_file, "exit 0",
                         app_params=["two words", "--not-an-option", ""]))

    record = fake_record(job)
    drive(job)

    argv = record["argv"]
    assert argv[argv.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert argv[argv.index("--deploy-mode") + 1] == "client"
    assert argv[argv.index("--properties-file") + 1] == str(job.work_dir / "spark.conf")
    assert f"spark.dmarket.job={job.pk}" in argv
    # The entry file, then the parameters verbatim, each one argument.
    assert argv[-5:] == [entry_file, "two words", "--not-an-option", "", "exit 0"]
    assert (record["tag"], record["events"]) == (job.tag, job.events_dir.as_uri())
    assert record["env"] == {
        "SPARK_HOME": settings.DMARKET_SPARK_HOME, "SPARK_USER": job.tag,
        "DMARKET_JOB_ID": str(job.pk), "DMARKET_OUTPUT_DIR": str(job.output_dir),
        "HOME": str(job.home_dir)}
    # The wrapper's session: the driver runs in the wrapper's process group.
    assert record["pgid"] == job.driver_pid
    assert driver_log(job).startswith("dmarket: the driver runs WITHOUT a sandbox "
                                      "(DMARKET_SANDBOX=off)\n")


def test_the_wrapper_ends_what_the_driver_left_running(
        fake_spark, alice, entry_file):
    job = started(submit(alice, entry_file, "gentle-child; exit 0"))

    record = fake_record(job, children=1)
    job = drive(job)

    assert (job.status, job.exit_code) == (Job.SUCCEEDED, 0)
    # The driver's child, still sleeping when the driver exited, got the wrapper's SIGTERM.
    assert record["children"] and group_members(record["pgid"]) == []


def test_cancel_while_running_terms_the_driver_and_the_job_is_cancelled(
        fake_spark, alice, entry_file, settings):
    # A long grace: the driver must end on the SIGTERM alone.
    settings.DMARKET_CANCEL_GRACE = 30
    job = started(submit(alice, entry_file, "sleep 30"))
    record = fake_record(job)

    assert job_cancel(job) is False
    began = time.monotonic()
    job = drive(job)

    # 128 + SIGTERM: the wrapper (which ignores SIGTERM) outlived the driver and recorded it.
    assert (job.status, job.exit_code, job.status_reason) == (
        Job.CANCELLED, 128 + signal.SIGTERM, "cancelled by its owner")
    assert time.monotonic() - began < 5
    assert group_members(record["pgid"]) == []
    settle(job, alice)


def test_a_driver_that_ignores_sigterm_is_killed_after_the_grace(
        fake_spark, alice, entry_file, settings):
    job = started(submit(alice, entry_file, "ignore-term; child; sleep 30"))
    record = fake_record(job, children=1)
    driver, child = record["pid"], record["children"][0]

    job_cancel(job)
    launcher_tick()
    began = time.monotonic()
    term_sent = launcher._term_sent[job.pk]
    # Within the grace it runs on, SIGTERM or not; so does its child, which ignores it too.
    while time.monotonic() - began < 0.7 * settings.DMARKET_CANCEL_GRACE:
        launcher_tick()
        job.refresh_from_db()
        assert job.status == Job.STARTING and job.cancel_requested
        assert {driver, child} <= set(group_members(job.driver_pid))
        time.sleep(0.05)
    job = drive(job)

    assert time.monotonic() - term_sent > settings.DMARKET_CANCEL_GRACE
    # The SIGKILL spared the wrapper, which recorded the driver's end as 128 + SIGKILL.
    assert (job.status, job.exit_code, job.status_reason) == (
        Job.CANCELLED, 128 + signal.SIGKILL, "cancelled by its owner")
    assert (job.work_dir / "exit_code").read_text() == "137\n"
    assert group_members(job.driver_pid) == []
    assert job.pk not in launcher._term_sent and job.pk not in launcher._kill_sent
    settle(job, alice)


def test_a_wrapper_that_does_not_record_the_end_is_killed_a_grace_later(
        fake_spark, alice, entry_file, settings):
    """A stopped wrapper cannot write the exit code: a grace after the driver's KILL, the
    whole group is killed, the wrapper too, and the job ends as asked, without a code."""
    job = started(submit(alice, entry_file, "ignore-term; sleep 30"))
    record = fake_record(job)

    job_cancel(job)
    launcher_tick()
    term_sent = launcher._term_sent[job.pk]
    os.kill(job.driver_pid, signal.SIGSTOP)
    job = drive(job)

    assert time.monotonic() - term_sent > 2 * settings.DMARKET_CANCEL_GRACE
    assert (job.status, job.exit_code, job.status_reason) == (
        Job.CANCELLED, None, "cancelled by its owner")
    assert not (job.work_dir / "exit_code").exists()
    assert group_members(record["pgid"]) == []
    settle(job, alice)


def test_a_spark_submit_that_cannot_be_run_fails_the_job_with_the_wrappers_code(
        fake_spark, alice, entry_file, settings):
    (Path(settings.DMARKET_SPARK_HOME) / "bin" / "spark-submit").chmod(0o644)
    job = started(submit(alice, entry_file, "exit 0"))

    job = drive(job)

    assert (job.status, job.exit_code, job.status_reason) == (
        Job.FAILED, 127, "the driver exited with code 127")
    assert "dmarket: could not start the driver: [Errno 13] Permission denied" in driver_log(job)
    settle(job, alice)


def test_a_driver_that_vanishes_without_an_exit_code_is_lost_and_what_it_left_is_killed(
        fake_spark, alice, entry_file):
    job = started(submit(alice, entry_file, "child;sleep 30"))
    record = fake_record(job, children=1)
    assert {record["pid"], *record["children"]} <= set(group_members(job.driver_pid))

    # The wrapper dies before it can record anything (an OOM kill, a host's operator...);
    # with no sandbox, nothing else ends what it started.
    os.kill(job.driver_pid, signal.SIGKILL)
    job = drive(job)

    assert (job.status, job.exit_code, job.status_reason) == (
        Job.LOST, None, "the driver vanished without an exit code")
    assert job.driver_pid not in launcher._children
    wait_for(lambda: group_members(job.driver_pid) == [], 5, 0.05,
             "the job's leftovers to die")
    settle(job, alice)
    assert ledger_kinds(alice) == ["grant", "hold", "release"]


@pytest.mark.parametrize("job_id, killed", [("7", True), ("8", False), (None, False)])
def test_of_a_vanished_wrappers_group_only_processes_carrying_the_jobs_id_are_killed(
        job_id, killed):
    """Its pid may have gone to another process since: the group's number alone proves
    nothing."""
    env = {"PATH": os.environ["PATH"], **({"DMARKET_JOB_ID": job_id} if job_id else {})}
    process = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    try:
        launcher.leftovers_kill(Job(pk=7, driver_pid=process.pid))
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        assert (process.poll() is not None) == killed
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("limit_from", ["job", "setting"])
def test_a_job_past_its_max_runtime_is_stopped_and_fails(
        fake_spark, alice, entry_file, settings, limit_from):
    if limit_from == "job":
        job = submit(alice, entry_file, "sleep 30", max_runtime=1)
    else:
        settings.DMARKET_JOB_MAX_RUNTIME = 1
        job = submit(alice, entry_file, "sleep 30")
    assert job.runtime_limit == 1
    job = started(job)
    fake_record(job)

    job = drive(job)

    assert (job.status, job.exit_code) == (Job.FAILED, 128 + signal.SIGTERM)
    assert job.status_reason.startswith("the job ran past its max_runtime")
    assert job.status_reason == "the job ran past its max_runtime of 1 s"
    assert (job.finished_at - job.started_at).total_seconds() > 1
    assert group_members(job.driver_pid) == []
    settle(job, alice)


@pytest.fixture
def history(settings):
    """The fake history server: every application had one executor of one core, for an hour,
    on 192.0.2.10 (bob's machine); the fake master UI at the same address."""
    fake = FakeHistory(lambda app_id: [ended_executor(1, "192.0.2.10")]).start()
    settings.DMARKET_HISTORY_URL = fake.url
    settings.DMARKET_SPARK_MASTER_UI = fake.url
    settings.DMARKET_BILLING_DEADLINE = 5
    yield fake
    fake.stop()


def test_a_verified_application_runs_and_its_credit_cap_stops_the_job(
        fake_spark, history, alice, bob, entry_file, settings):
    make_machine(bob)
    app_id = "app-20260101000000-0001"
    job = started(submit(alice, entry_file, f"app {app_id}; sleep 30", max_credits="1"))
    fake_record(job)
    assert (job.events_dir / f"{app_id}.inprogress").exists()

    # The master lists it, under the job's tag, and its event log is in the job's directory.
    fake_spark.show(app_id, job.tag)
    job = drive(job, lambda job: job.status == Job.RUNNING)
    assert job.spark_app_id == app_id
    # Neither the launcher nor the police killed the job's own application (a kill asks
    # the master's UI page for its CSRF token first).
    assert not job.cancel_requested and "/" not in history.asked

    # Its executor's hour costs at least its cap: billing asks for its stop.
    billing_tick()
    job.refresh_from_db()
    assert job.cancel_requested and (job.stop_status, job.status_reason) == (
        Job.FAILED, "credit cap reached")
    job = drive(job)

    assert (job.status, job.exit_code, job.status_reason) == (
        Job.FAILED, 128 + signal.SIGTERM, "credit cap reached")
    # Its event log is linked for the history server.
    assert (settings.DMARKET_EVENT_LOG_DIR / f"{app_id}.inprogress").exists()
    history.completed.add(app_id)
    settle(job, alice)
    assert job.run.cost == job.run.max_credits == Decimal("1")
    # Its hold, all charged: nothing left to release.
    assert ledger_kinds(alice) == ["grant", "hold", "charge"]
