"""The machine agent (`dmarket machine add`) with the server's daemons, over real HTTP: two
contributors share machines on one computer (127.0.0.4 and 127.0.0.5), a job spans both, and
one machine loses power mid-job."""

import json
import os
import signal
import tempfile
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from django.db.models import Max

from dmarket.cluster import spark
from dmarket.cluster.billing import billing_tick
from dmarket.cluster.launcher import launcher_tick
from dmarket.cluster.monitor import monitor_tick
from dmarket.cluster.testing import LocalCluster, wait_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine, MachineStateChange
from dmarket_client.cli import cli

from .conftest import use_cluster
from .util import executors_registered, expected_bill, history_core_ms, ledger_sum, read_log, \
    submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.spark]
ADDRESSES = {"carol": "127.0.0.4", "dave": "127.0.0.5"}


@pytest.fixture(scope="module")
def bare_cluster():
    """A master and history server with no worker: the agents bring them."""
    cluster = LocalCluster(tempfile.mkdtemp(prefix="dmarket-agent-"))
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture
def market(bare_cluster, settings, live_server, tmp_path):
    settings.DMARKET_HEARTBEAT_INTERVAL = 1
    settings.DMARKET_HEARTBEAT_TIMEOUT = 4
    return use_cluster(settings, bare_cluster, f"agent-test-{tmp_path.name}")


def dmarket(user, tmp_path, server, *args):
    """Run the client as `user`, in-process, as a contributor would from their terminal."""
    home = tmp_path / user.username
    env = {"DMARKET_STATE_DIR": str(home / "state"), "DMARKET_CONFIG": str(home / "config.json"),
           "DMARKET_TOKEN": user.token}
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        # click 8.2 removed the argument: its results always keep stderr apart.
        runner = CliRunner()
    result = runner.invoke(cli, ["--server", server, *args], env=env)
    return result


def agent_pids(tmp_path, user, machine_id):
    base = tmp_path / user.username / "state" / f"machine-{machine_id}"
    return int((base / "agent.pid").read_text()), int((base / "worker.pid").read_text())


def gone(pid):
    """Ended: no such process, or a zombie waiting for its parent (here, this test process,
    which started the detached agent in-process) to reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def drive(job, until, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher_tick()
        billing_tick()
        monitor_tick()
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} is {job.status}; log:\n{read_log(job)}")


def test_two_agents_share_a_job_and_a_machine_lost_mid_job_is_offline_and_paid_fairly(
        market, live_server, make_user, tmp_path):
    owners = {name: make_user(name) for name in ADDRESSES}
    machines = {}
    for name, address in ADDRESSES.items():
        result = dmarket(owners[name], tmp_path, live_server.url, "machine", "add",
                         "--cores", "1", "--memory", "1g", "--address", address,
                         "--name", f"{name}'s laptop", "--detach", "--json")
        assert result.exit_code == 0, result.output + result.stderr
        machines[name] = Machine.objects.get(pk=json.loads(result.stdout)["id"])
    try:
        # Each worker offers exactly what its owner offered, and the market sees it alive.
        for name, machine in machines.items():
            worker = wait_for(lambda: market.worker(ADDRESSES[name]), 90, what="worker")
            assert (worker["cores"], worker["memory"]) == (1, 1024)
            wait_for(lambda: Machine.objects.get(pk=machine.pk).state == Machine.ONLINE, 30,
                     what=f"{name}'s machine online")
            machines[name].refresh_from_db()
            assert machines[name].worker_id == worker["id"]

        job = submit(make_user("alice"), app_params=["--seconds", "30", "--tasks", "12"])
        job = drive(job, lambda j: executors_registered(j, 2))
        dave_agent, dave_worker = agent_pids(tmp_path, owners["dave"], machines["dave"].pk)
        os.kill(dave_agent, signal.SIGKILL)
        os.killpg(dave_worker, signal.SIGKILL)
        killed_at = time.time()

        job = drive(job, lambda j: j.settled_at is not None, timeout=300)

        assert job.status == Job.SUCCEEDED, read_log(job)
        dave_machine = Machine.objects.get(pk=machines["dave"].pk)
        assert dave_machine.state == Machine.OFFLINE
        went = MachineStateChange.objects.filter(machine=dave_machine, state=Machine.OFFLINE)
        offline_after = went.aggregate(t=Max("created_at"))["t"].timestamp() - killed_at
        # Within the heartbeat timeout plus one monitor pass (and the loop's own pace).
        assert offline_after <= 4 + 1 + 1
        # Dave earned for the time his executor ran, no more.
        core_ms = history_core_ms(job)
        executors = spark.history_executors(job.spark_app_id)
        daves = [e["id"] for e in executors if e["hostPort"].startswith(ADDRESSES["dave"])]
        assert len(daves) == 1
        assert ledger_sum(machine=dave_machine, kind=LedgerEntry.EARNING) == expected_bill(
            job, {daves[0]: core_ms[daves[0]]})
        assert job.run.cost == expected_bill(job, core_ms)

        # Carol sees her machine and what it earned, with the client.
        listing = dmarket(owners["carol"], tmp_path, live_server.url, "machine", "list",
                          "--json")
        assert [m["state"] for m in json.loads(listing.stdout)] == ["ONLINE"]
        credits = json.loads(dmarket(owners["carol"], tmp_path, live_server.url, "credits",
                                     "--json").stdout)
        assert credits["earned"] == str(ledger_sum(machine=machines["carol"],
                                                   kind=LedgerEntry.EARNING))
        assert float(credits["earned"]) > 0

        # Removing the machine stops its agent and its worker, gracefully, and deregisters it.
        carol_agent, carol_worker = agent_pids(tmp_path, owners["carol"], machines["carol"].pk)
        removed = dmarket(owners["carol"], tmp_path, live_server.url, "machine", "remove",
                          str(machines["carol"].pk))
        assert removed.exit_code == 0, removed.output + removed.stderr
        assert Machine.objects.get(pk=machines["carol"].pk).state == Machine.REMOVED
        wait_for(lambda: market.worker(ADDRESSES["carol"]) is None, 30, what="worker gone")
        for pid in (carol_agent, carol_worker):
            wait_for(lambda: gone(pid), 20, what=f"process {pid} to end")
    finally:
        for name, machine in machines.items():
            try:
                agent, worker = agent_pids(tmp_path, owners[name], machine.pk)
            except (FileNotFoundError, ValueError):
                continue
            for kill in (lambda: os.kill(agent, signal.SIGKILL),
                         lambda: os.killpg(worker, signal.SIGKILL)):
                try:
                    kill()
                except ProcessLookupError:
                    pass


def add_machine(owner, tmp_path, server, address, *options):
    result = dmarket(owner, tmp_path, server, "machine", "add", "--cores", "1", "--memory",
                     "1g", "--address", address, "--detach", "--json", *options)
    assert result.exit_code == 0, result.output + result.stderr
    return Machine.objects.get(pk=json.loads(result.stdout)["id"])


def stop_agent(owner, tmp_path, machine):
    pidfile = tmp_path / owner.username / "state" / f"machine-{machine.pk}" / "agent.pid"
    try:
        agent = int(pidfile.read_text())
    except (FileNotFoundError, ValueError):
        return
    os.kill(agent, signal.SIGTERM)
    wait_for(lambda: gone(agent), 30, what="the agent to stop")


def test_the_agent_restarts_a_worker_that_dies(market, live_server, make_user, tmp_path):
    carol = make_user("carol")
    machine = add_machine(carol, tmp_path, live_server.url, "127.0.0.6")
    try:
        first = wait_for(lambda: market.worker("127.0.0.6"), 90, what="the worker")
        _, worker = agent_pids(tmp_path, carol, machine.pk)

        os.killpg(worker, signal.SIGKILL)

        second = wait_for(lambda: (w := market.worker("127.0.0.6")) and w["id"] != first["id"]
                          and w, 90, what="a new worker")
        wait_for(lambda: Machine.objects.get(pk=machine.pk).worker_id == second["id"], 30,
                 what="the market to learn the new worker's id")
        assert Machine.objects.get(pk=machine.pk).state == Machine.ONLINE
    finally:
        stop_agent(carol, tmp_path, machine)
    # A stopped agent stops its worker: the machine then goes offline for lack of heartbeats.
    wait_for(lambda: market.worker("127.0.0.6") is None, 30, what="the worker to stop")


def test_outside_its_sharing_window_the_worker_is_stopped_and_the_machine_paused(
        market, live_server, make_user, tmp_path):
    carol = make_user("carol")
    now = datetime.now(timezone.utc)
    # A one-hour window that starts two hours from now: not now, whatever the time.
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    window = f"{start:%H:%M}-{end:%H:%M}"
    machine = add_machine(carol, tmp_path, live_server.url, "127.0.0.7",
                          "--share-between", window)
    try:
        wait_for(lambda: Machine.objects.get(pk=machine.pk).state == Machine.PAUSED, 30,
                 what="the machine to show PAUSED")
        assert market.worker("127.0.0.7") is None
        assert Machine.objects.get(pk=machine.pk).worker_state == "STOPPED"
    finally:
        stop_agent(carol, tmp_path, machine)
