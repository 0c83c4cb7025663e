"""A contributor's machine, shared through the agent, tried as a curious job would: its
executors run sandboxed (dmarket_client.worker_sandbox) and reach nothing of the contributor's,
of the agent's or of other applications', and cannot take more memory than was offered."""

import json
import os

import pytest

from dmarket.cluster.testing import wait_for
from dmarket.jobs.models import Job

from .conftest import APPS
from .test_agent import add_machine, bare_cluster, drive, market, stop_agent  # noqa: F401
from .util import read_log, submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.spark]


@pytest.mark.skipif(os.geteuid() != 0, reason="the memory cap needs a cgroup (root)")
def test_a_curious_job_reaches_nothing_of_the_contributor_and_no_more_memory_than_offered(
        market, live_server, make_user, tmp_path, settings):
    settings.DMARKET_PUBLIC_URL = live_server.url
    carol = make_user("carol")
    home = tmp_path / "carol"
    home.mkdir()
    (home / "diary.txt").write_text("carol's own\n")
    machine = add_machine(carol, tmp_path, live_server.url, "127.0.0.8")
    state = home / "state" / f"machine-{machine.pk}"
    try:
        wait_for(lambda: market.worker("127.0.0.8"), 120, what="the sandboxed worker")
        # Another application's directory on the same worker, with its files.
        other = state / "work" / "app-20260101000000-0042"
        other.mkdir(parents=True)
        (other / "data.csv").write_text("someone else's\n")
        targets = {"read": [str(home / "diary.txt"), str(state / "machine.json"),
                            str(other / "data.csv"), "/etc/shadow"],
                   "list": [str(home), str(state), str(other), "/run"],
                   # The machine offers 1 GB: 2 GB in one Python worker passes any cap.
                   "allocate_mb": {"within": 256, "past": 2048}}
        job = submit(make_user("mallory"), entry_file=str(APPS / "curious.py"), cores=1,
                     executor_memory_mb=512, app_params=[json.dumps(targets)])
        job = drive(job, lambda j: j.status in Job.FINISHED, timeout=300)
        assert job.status == Job.SUCCEEDED, read_log(job)[-3000:]
        report = json.loads((job.output_dir / "report.json").read_text())
        # Its agent reaches its worker's UI (the firewall refuses it to drivers, not to it).
        machine.refresh_from_db()
        assert (machine.state, machine.worker_id) == ("ONLINE", market.worker("127.0.0.8")["id"])
    finally:
        stop_agent(carol, tmp_path, machine)

    executor = report["executor"]
    assert executor["uid"] not in (0, os.getuid())
    for path, got in executor["read"].items():
        assert not got["ok"], (path, got)
    # Where the work directory lies under them, the path is there, empty but for it.
    listed = executor["list"]
    assert "diary.txt" not in listed[str(home)].get("got", "")
    assert "machine.json" not in listed[str(state)].get("got", "")
    assert not listed[str(other)]["ok"], listed
    # The worker's real Java (an application naming it as JAVA_HOME would escape the shim)
    # is at a path an executor never sees; its own is at one no worker has.
    assert listed["/run"]["got"] == "['dmarket-executor']", listed["/run"]
    # Its own application's directory only.
    app_dir = os.path.basename(os.path.dirname(executor["cwd"]))
    assert json.loads(executor["work"]["got"].replace("'", '"')) == [app_dir]
    # Its one executor started at the first try (a failed start leaves a directory each).
    assert os.listdir(state / "work" / app_dir) == ["0"]
    # Its own processes only (its JVM, its Python workers).
    assert len(executor["procs"]) < 10, executor["procs"]
    assert not {"DMARKET_TOKEN", "DMARKET_REAL_JAVA_HOME"} & set(executor["env"])
    assert not any(name.startswith("DMARKET_WORKER") for name in executor["env"])
    assert report["allocate_within"]["ok"], report["allocate_within"]
    assert not report["allocate_past"]["ok"], report["allocate_past"]
