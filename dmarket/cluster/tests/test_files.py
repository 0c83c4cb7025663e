"""Jobs made of dmarket:// files on a real Spark cluster: the entry file, a lib, an archive
and a plain file come from the central server over HTTP (pytest-django's live server) with
the job's credential, fetched by spark-submit and by every executor; the model one job writes
is the archive of the next."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import pytest
import requests
from pytest_django.live_server_helper import LiveServer

from dmarket.cluster.testing import LocalCluster
from dmarket.conftest import client_for
from dmarket.files.tests.util import uploaded
from dmarket.jobs.inputs import job_input_urls
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .conftest import APPS, use_cluster
from .util import drive, read_log, result, settled, share_workers, submit

pytestmark = pytest.mark.django_db(transaction=True)


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buffer.getvalue()


def store_the_app(user):
    """The application and its inputs, in the user's store."""
    uploaded(user, "apps/files_app.py", (APPS / "files_app.py").read_bytes())
    uploaded(user, "lib/fhelper.zip", zipped({
        "fhelper/__init__.py": "def greet(who):\n    return f'hello {who} from the lib'\n"}))
    uploaded(user, "data/values.zip", zipped({"values.txt": "1 2 3\n"}))
    uploaded(user, "conf/settings.json", json.dumps({"epochs": 3}).encode())


def files_job(user, **fields):
    body = {"entry_file": "dmarket://apps/files_app.py", "libs": ["dmarket://lib/fhelper.zip"],
            "archives": ["dmarket://data/values.zip#data"],
            "files": ["dmarket://conf/settings.json"], "max_credits": "5"}
    body.update(fields)
    return submit(user, **body)


def test_a_job_of_dmarket_files_runs_and_its_model_is_the_next_jobs_archive(
        cluster, make_user, live_server, settings):
    settings.DMARKET_PUBLIC_URL = live_server.url
    share_workers(cluster, make_user)
    alice = make_user("alice")
    store_the_app(alice)

    job = drive(files_job(alice), settled)

    assert job.status == Job.SUCCEEDED, read_log(job)
    assert job.entry_file == "dmarket://apps/files_app.py@1"
    first = result(job)
    assert first["driver"] == "hello driver from the lib"
    assert {row["host"] for row in first["rows"]} == {"127.0.0.2", "127.0.0.3"}
    for row in first["rows"]:
        assert row["helper"] == f"hello {row['task']} from the lib"
        assert (row["values"], row["settings"], row["model"]) == (["1", "2", "3"],
                                                                  {"epochs": 3}, None)
    # Its credential ended with it.
    entry_url = job_input_urls(job)(job.entry_file, "entry_file")
    assert entry_url.startswith(live_server.url + f"/api/jobs/{job.pk}/inputs/")
    assert requests.get(entry_url, timeout=10).status_code == 403

    model = f"dmarket://jobs/{job.pk}/results/model.zip#model"
    second = drive(files_job(alice, archives=["dmarket://data/values.zip#data", model]),
                   settled)

    assert second.status == Job.SUCCEEDED, read_log(second)
    assert [row["model"] for row in result(second)["rows"]] == [
        f"trained by {job.spark_app_id}"] * 2


# --- A worker on another network --------------------------------------------------------------

def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def netns():
    """A network namespace joined to this host by a veth pair: (host side address, the
    namespace's address, its name). Inside it 127.0.0.1 is its own empty loopback, so what
    runs there reaches this host's services only at the host side address, over the link."""
    if os.geteuid() != 0:
        pytest.skip("SKIPPED the network-namespace worker: making a network namespace needs "
                    "root (CI machines run the tests as root)")
    if shutil.which("ip") is None:
        pytest.skip("SKIPPED the network-namespace worker: no `ip` command (iproute2)")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: Spark cannot run")
    n = os.getpid() % 250 + 1
    name, host_end, ns_end = f"dmkf{n}", f"dmkf{n}h", f"dmkf{n}n"
    host, inside = f"10.231.{n}.1", f"10.231.{n}.2"
    made = ip("netns", "add", name, check=False)
    if made.returncode != 0:
        pytest.skip(f"SKIPPED the network-namespace worker: `ip netns add` failed: "
                    f"{made.stderr.strip()}")
    try:
        ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        ip("link", "set", ns_end, "netns", name)
        ip("addr", "add", f"{host}/24", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{inside}/24", "dev", ns_end)
        ip("netns", "exec", name, "ip", "link", "set", ns_end, "up")
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield host, inside, name
    finally:
        ip("link", "del", host_end, check=False)
        ip("netns", "del", name, check=False)


def reachable_from(netns_name, host, port):
    """Whether a TCP connection from inside the namespace to host:port succeeds."""
    probe = ("import socket, sys\n"
             "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), 5).close()\n"
             "except OSError:\n    sys.exit(1)\n")
    done = subprocess.run(["ip", "netns", "exec", netns_name, sys.executable, "-c", probe,
                           host, str(port)], capture_output=True)
    return done.returncode == 0


@pytest.mark.spark  # a cluster of its own (not the cluster fixture, which would mark it)
def test_a_worker_in_its_own_network_namespace_fetches_the_files_and_runs_the_job(
        netns, make_user, settings, tmp_path):
    host, inside, name = netns
    cluster = LocalCluster(tempfile.mkdtemp(prefix="dmarket-spark-netns-"), host=host)
    server = None
    try:
        cluster.start()
        cluster.start_worker(inside, 1, 1024, netns=name)
        use_cluster(settings, cluster, f"test-netns-{tmp_path.name}")
        # The central server, its drivers and its files, all at the host's end of the link.
        server = LiveServer(f"{host}:0")
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, host]
        settings.DMARKET_PUBLIC_URL = server.url
        settings.DMARKET_DRIVER_HOST = host
        port = server.thread.port
        assert reachable_from(name, host, port)
        assert not reachable_from(name, "127.0.0.1", port)
        owner = make_user("carol")
        Machine.objects.create(user=owner, cores=1, memory_mb=1024, address=inside,
                               state=Machine.ONLINE, worker_id=cluster.worker(inside)["id"])
        alice = make_user("alice")
        store_the_app(alice)

        job = drive(files_job(alice, cores=1), settled)

        assert job.status == Job.SUCCEEDED, read_log(job)
        rows = result(job)["rows"]
        assert {row["host"] for row in rows} == {inside}
        assert all(row["values"] == ["1", "2", "3"] for row in rows)
        listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/").json()
        assert [f["path"] for f in listing["results"]] == ["model.zip", "result.json"]
        assert job.run.cost > 0
    finally:
        if server is not None:
            server.stop()
        cluster.cleanup()
