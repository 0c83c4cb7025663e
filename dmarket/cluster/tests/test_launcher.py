"""The launcher daemon on a real Spark cluster: real spark-submit, real drivers, real bills."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from dmarket.cluster import spark
from dmarket.cluster.billing import billing_tick
from dmarket.cluster.launcher import launcher_claim, launcher_tick
from dmarket.cluster.testing import database_url, wait_for
from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job

from .util import (drive, executors_registered, expected_bill, history_core_ms, ledger_sum,
                   pgid_alive, read_log, result, settled, share_workers, submit)

pytestmark = pytest.mark.django_db(transaction=True)


def test_job_runs_to_success_with_results_log_and_exact_bill(cluster, make_user):
    machines = share_workers(cluster, make_user)
    alice = make_user("alice")
    job = submit(alice, app_params=["--seconds", "4"])

    job = drive(job, settled)

    assert job.status == Job.SUCCEEDED
    assert job.exit_code == 0
    assert job.spark_app_id.startswith("app-")
    assert "finished 4 tasks" in read_log(job)
    client = client_for(alice)
    listing = client.get(f"/api/jobs/{job.pk}/results/").json()
    assert [f["path"] for f in listing["results"]] == ["nested/note.txt", "result.json"]
    # Recorded in the pass that ended it, with the bytes' SHA-256.
    assert listing["results"][0]["sha256"] == hashlib.sha256(b"nested result\n").hexdigest()
    download = client.get(f"/api/jobs/{job.pk}/results/nested/note.txt")
    assert b"".join(download.streaming_content) == b"nested result\n"
    # Both workers ran executors; the bill is their history-server core-time at the price.
    core_ms = history_core_ms(job)
    assert len(core_ms) == 2
    assert job.run.cost == expected_bill(job, core_ms) > 0
    assert -ledger_sum(run=job.run, kind=LedgerEntry.CHARGE) == job.run.cost
    earned = {address: ledger_sum(machine=m, kind=LedgerEntry.EARNING)
              for address, m in machines.items()}
    assert all(amount > 0 for amount in earned.values())
    assert sum(earned.values()) == job.run.cost
    credits = client.get("/api/credits/").json()
    assert credits["held"] == "0.000000"
    assert Decimal(credits["balance"]) == Decimal(100) - job.run.cost


def test_driver_that_raises_fails_with_its_traceback_in_the_log(cluster, make_user):
    share_workers(cluster, make_user)
    job = submit(make_user("alice"), app_params=["--fail"])

    job = drive(job, settled)

    assert job.status == Job.FAILED
    assert job.exit_code == 1
    assert job.status_reason == "the driver exited with code 1"
    log = read_log(job)
    assert "Traceback" in log and "RuntimeError: deliberate failure in the driver" in log


def test_parameters_reach_the_application_verbatim(cluster, make_user):
    share_workers(cluster, make_user)
    params = ["--seconds", "0.5", "; rm -rf / && echo $(whoami)", "`id`", "a b", "'q'", '"',
              "*", "$HOME", "\\", "--tasks", "2"]
    job = submit(make_user("alice"), app_params=params)

    job = drive(job, settled)

    assert job.status == Job.SUCCEEDED, read_log(job)
    assert result(job)["argv"] == params


def test_cancel_while_queued_never_starts_it(cluster, make_user, settings):
    share_workers(cluster, make_user)
    alice = make_user("alice")
    settings.DMARKET_DRIVER_SLOTS = 0
    job = submit(alice)
    assert client_for(alice).post(f"/api/jobs/{job.pk}/cancel/").status_code == 200
    settings.DMARKET_DRIVER_SLOTS = 2

    launcher_tick()

    job.refresh_from_db()
    assert job.status == Job.CANCELLED
    assert job.driver_pid is None and job.started_at is None
    assert not job.work_dir.exists()
    assert ledger_sum(run=job.run) == 0


def test_cancel_while_running_kills_the_driver_and_bills_the_time_it_ran(cluster, make_user):
    share_workers(cluster, make_user)
    alice = make_user("alice")
    job = submit(alice, app_params=["--seconds", "120"])
    job = drive(job, lambda j: executors_registered(j, 1))

    response = client_for(alice).post(f"/api/jobs/{job.pk}/cancel/")

    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    job = drive(job, settled)
    assert job.status == Job.CANCELLED
    assert job.status_reason == "cancelled by its owner"
    # Nothing of the driver runs any more (killed processes may take a moment to be reaped).
    wait_for(lambda: not pgid_alive(job.driver_pid), 10, what="the driver's processes to go")
    apps = {a["id"]: a for a in spark.master_state()["completedapps"]}
    assert apps[job.spark_app_id]["state"] in ("KILLED", "FINISHED")
    core_ms = history_core_ms(job)
    assert job.run.cost == expected_bill(job, core_ms) > 0
    assert job.finished_at - job.started_at < timedelta(seconds=110)


def test_launcher_killed_and_restarted_mid_job_ends_it_right_and_bills_once(
        cluster, make_user, settings, tmp_path):
    share_workers(cluster, make_user)
    job = submit(make_user("alice"), app_params=["--seconds", "20"])
    env = dict(os.environ,
               DJANGO_SETTINGS_MODULE="dmarket.settings",
               DATABASE_URL=database_url(),
               DMARKET_DATA_DIR=str(tmp_path / "data"),
               DMARKET_JOBS_DIR=str(settings.DMARKET_JOBS_DIR),
               DMARKET_EVENT_LOG_DIR=str(settings.DMARKET_EVENT_LOG_DIR),
               DMARKET_SPARK_MASTER_URL=cluster.master_url,
               DMARKET_SPARK_MASTER_UI=cluster.master_ui,
               DMARKET_HISTORY_URL=cluster.history_url,
               DMARKET_SPARK_SECRET=cluster.secret,
               DMARKET_LAUNCHER_ID=settings.DMARKET_LAUNCHER_ID,
               DMARKET_SETTLE_GRACE="5")

    def start_launcher(name):
        with open(tmp_path / f"{name}.log", "wb") as log:
            return subprocess.Popen([sys.executable, "manage.py", "launcher", "--loop"],
                                    cwd=settings.BASE_DIR, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)

    first = start_launcher("launcher-1")
    try:
        job = wait_db(job, lambda j: j.status == Job.RUNNING, 120, first,
                      tmp_path / "launcher-1.log")
    finally:
        # Also when it failed: a launcher left running would claim the next tests' jobs.
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert pgid_alive(job.driver_pid), "the driver must outlive its launcher"

    second = start_launcher("launcher-2")
    try:
        job = wait_db(job, lambda j: j.is_finished, 180, second, tmp_path / "launcher-2.log")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    assert job.status == Job.SUCCEEDED, read_log(job)
    # The billing daemon settles it (the launcher only records the end).
    wait_for(lambda: billing_tick() or settled(Job.objects.get(pk=job.pk)), 60,
             what="the job settled")
    job.refresh_from_db()
    core_ms = history_core_ms(job)
    charges = LedgerEntry.objects.filter(run=job.run, kind=LedgerEntry.CHARGE)
    assert charges.count() == len(core_ms) == 2
    assert job.run.cost == expected_bill(job, core_ms)
    # Billing again, as the poller will, writes nothing more.
    billing_tick()
    assert LedgerEntry.objects.filter(run=job.run).count() == 1 + 2 * 2 + 1


def test_a_worker_lost_mid_job_the_job_still_succeeds_and_only_its_executor_time_is_billed(
        cluster, make_user):
    machines = share_workers(cluster, make_user)
    job = submit(make_user("alice"), app_params=["--seconds", "30", "--tasks", "12"])
    job = drive(job, lambda j: executors_registered(j, 2))
    time.sleep(2)

    cluster.kill_worker("127.0.0.3")
    job = drive(job, settled, timeout=240)

    assert job.status == Job.SUCCEEDED, read_log(job)
    executors = spark.history_executors(job.spark_app_id)
    lost = [e for e in executors if e["hostPort"].startswith("127.0.0.3")]
    assert len(lost) == 1 and lost[0]["removeReason"].startswith("worker lost")
    core_ms = history_core_ms(job)
    assert job.run.cost == expected_bill(job, core_ms)
    dave_machine = machines["127.0.0.3"]
    dave_earned = ledger_sum(machine=dave_machine, kind=LedgerEntry.EARNING)
    assert dave_earned == expected_bill(job, {lost[0]["id"]: core_ms[lost[0]["id"]]})
    carol_earned = ledger_sum(machine=machines["127.0.0.2"], kind=LedgerEntry.EARNING)
    assert carol_earned > dave_earned


def test_a_job_whose_cost_reaches_its_cap_is_stopped_as_failed(cluster, make_user):
    share_workers(cluster, make_user)
    alice = make_user("alice")
    cap = Decimal("0.002000")  # about 7 core-seconds at 1 credit per core-hour
    job = submit(alice, app_params=["--seconds", "120"], max_credits=str(cap))

    job = drive(job, settled, timeout=180)

    assert job.status == Job.FAILED
    assert job.status_reason == "credit cap reached"
    assert job.run.cost == cap
    assert job.finished_at - job.started_at < timedelta(seconds=110)
    credits = client_for(alice).get("/api/credits/").json()
    assert credits == {"balance": "99.998000", "held": "0.000000", "available": "99.998000",
                       "earned": "0.000000", "spent": "0.002000"}


def wait_db(job, until, timeout, process, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if until(job):
            return job
        if process.poll() is not None:
            raise AssertionError(f"launcher exited: {log_path.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} is {job.status}; launcher log:\n{log_path.read_text()}")


def test_queued_jobs_are_claimed_round_robin_across_users(make_user, entry_file):
    alice, bob = make_user("alice"), make_user("bob")
    alices = [submit(alice, entry_file=entry_file, name=f"a{i}") for i in range(3)]
    bobs = [submit(bob, entry_file=entry_file, name="b0")]

    claimed = []
    while (job := launcher_claim("launcher-x")) is not None:
        claimed.append(job.name)

    # Bob's one job goes second, not after Alice's three.
    assert claimed == ["a0", "b0", "a1", "a2"]
    assert {j.status for j in Job.objects.filter(pk__in=[j.pk for j in alices + bobs])} == {
        Job.STARTING}


def test_concurrent_launchers_claim_each_job_once(make_user, entry_file):
    users = [make_user(f"u{i}") for i in range(4)]
    jobs = [submit(user, entry_file=entry_file) for user in users for _ in range(3)]
    claims = {}

    def claim(launcher_id):
        mine = []
        try:
            while (job := launcher_claim(launcher_id)) is not None:
                mine.append(job.pk)
        finally:
            connection.close()
        claims[launcher_id] = mine

    threads = [threading.Thread(target=claim, args=(f"launcher-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    claimed = [pk for mine in claims.values() for pk in mine]
    assert sorted(claimed) == sorted(j.pk for j in jobs)
    for launcher_id, mine in claims.items():
        assert set(Job.objects.filter(pk__in=mine).values_list("launcher", flat=True)) <= {
            launcher_id}


def reconciled(job, exit_code=None):
    """A job a launcher left RUNNING when it died, whose driver has gone too."""
    # A pid above the kernel's default pid_max (2**22): no process has it.
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, launcher="launcher-r",
                                         driver_pid=2 ** 22 + 17)
    job.refresh_from_db()
    job.work_dir.mkdir(parents=True, exist_ok=True)
    if exit_code is not None:
        (job.work_dir / "exit_code").write_text(f"{exit_code}\n")
    launcher_tick("launcher-r")
    job.refresh_from_db()
    # The launcher records the end; the billing daemon settles it, out of the launcher's loop.
    assert job.is_finished and job.settled_at is None
    billing_tick()
    job.refresh_from_db()
    return job


def test_restarted_launcher_finishes_a_job_whose_exit_code_was_recorded(make_user, entry_file):
    alice = make_user("alice")
    job = reconciled(submit(alice, entry_file=entry_file), exit_code=3)

    assert (job.status, job.exit_code, job.status_reason) == (
        Job.FAILED, 3, "the driver exited with code 3")
    assert job.settled_at is not None
    assert client_for(alice).get("/api/credits/").json()["held"] == "0.000000"


def test_the_pass_that_ends_a_job_records_its_results(make_user, entry_file):
    alice = make_user("alice")
    job = submit(alice, entry_file=entry_file)
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "model.bin").write_bytes(b"weights")

    job = reconciled(job, exit_code=0)

    assert job.status == Job.SUCCEEDED and job.results_stored_at is not None
    assert client_for(alice).get(f"/api/jobs/{job.pk}/results/").json()["results"] == [
        {"path": "model.bin", "size": 7, "modified_at": job.result_files.get().modified_at
         .isoformat().replace("+00:00", "Z"),
         "sha256": "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"}]


def test_restarted_launcher_marks_a_vanished_driver_lost_and_releases_its_hold(
        make_user, entry_file):
    alice = make_user("alice")
    job = reconciled(submit(alice, entry_file=entry_file))

    assert (job.status, job.exit_code) == (Job.LOST, None)
    assert job.status_reason == "the driver vanished without an exit code"
    assert [r.kind for r in LedgerEntry.objects.filter(run=job.run).order_by("id")] == [
        "hold", "release"]
    assert client_for(alice).get("/api/credits/").json()["held"] == "0.000000"


def test_where_no_sandbox_can_be_made_no_driver_starts_and_queued_jobs_say_why(
        make_user, entry_file, settings):
    settings.DMARKET_SANDBOX_USER = "no-such-sandbox-user"
    job = submit(make_user("alice"), entry_file=entry_file)

    assert launcher_tick("launcher-x") == 0

    job.refresh_from_db()
    assert job.status == Job.QUEUED and job.driver_pid is None
    if os.geteuid() == 0:
        assert job.status_reason == (
            "waiting: no driver can start: the sandbox user 'no-such-sandbox-user' does not "
            "exist: run ./install.sh as root, or useradd --system no-such-sandbox-user")
    else:
        assert job.status_reason.startswith("waiting: no driver can start: ")


@pytest.mark.spark
def test_with_the_sandbox_off_the_driver_log_says_so(make_user, server_file, settings):
    settings.DMARKET_SANDBOX = "off"
    settings.DMARKET_SANDBOX_USER = "no-such-sandbox-user"
    alice = make_user("alice", staff=True)
    job = submit(alice, entry_file=server_file)

    assert launcher_tick("launcher-x") == 1

    job.refresh_from_db()
    assert job.status == Job.STARTING and job.status_reason == ""
    assert read_log(job).startswith("dmarket: the driver runs WITHOUT a sandbox "
                                    "(DMARKET_SANDBOX=off)\n")
    wait_for(lambda: (job.work_dir / "exit_code").exists(), 60, what="the driver's end")
    launcher_tick("launcher-x")
