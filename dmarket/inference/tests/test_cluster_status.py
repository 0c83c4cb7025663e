"""GET /api/cluster/status/: machines, cores in use, and the jobs running on them."""

import pytest

from dmarket.conftest import client_for
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job

from .util import add_batch, running

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_spark(settings):
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:9"
    settings.DMARKET_HISTORY_URL = "http://127.0.0.1:9"


def test_machines_show_the_inference_jobs_that_ran_there_lately(alice, bob):
    a = Machine.objects.create(user=bob, name="a", cores=2, memory_mb=1, address="127.0.0.2",
                               state=Machine.ONLINE, cores_in_use=1)
    b = Machine.objects.create(user=bob, name="b", cores=1, memory_mb=1, address="127.0.0.3")
    Machine.objects.create(user=bob, cores=1, memory_mb=1, address="x", state=Machine.REMOVED)
    ijob = running(alice)
    add_batch(ijob, 0, 4, 1.0, seconds_ago=2, machine=a, executor="0")
    add_batch(ijob, 4, 4, 1.0, seconds_ago=3, machine=a, executor="1")
    add_batch(ijob, 8, 4, 1.0, seconds_ago=30, machine=b)
    response = client_for(bob).get("/api/cluster/status/")
    assert response.status_code == 200
    assert response.json() == [
        {"id": a.pk, "name": "a", "address": "127.0.0.2", "state": "ONLINE", "cores": 2,
         "cores_in_use": 1, "jobs": [{"kind": "inference", "id": ijob.pk, "owner": "alice",
                                      "cores": 2}]},
        {"id": b.pk, "name": "b", "address": "127.0.0.3", "state": "OFFLINE", "cores": 1,
         "cores_in_use": 0, "jobs": []},
    ]


def test_anonymous_is_401():
    assert client_for().get("/api/cluster/status/").status_code == 401


def test_regular_jobs_are_placed_by_their_live_executors(alice, bob, monkeypatch):
    from dmarket.cluster import spark
    from dmarket.jobs.models import Job

    a = Machine.objects.create(user=bob, name="a", cores=2, memory_mb=1, address="127.0.0.2",
                               state=Machine.ONLINE, cores_in_use=2)
    job = make_job(user=alice, name="pi", entry_file="/x.py", status=Job.RUNNING,
                   spark_app_id="app-1")
    executors = {"app-1": [
        {"id": "driver", "hostPort": "127.0.0.1:1", "totalCores": 0},
        {"id": "0", "hostPort": "127.0.0.2:4100", "totalCores": 2},
        {"id": "1", "hostPort": "127.0.0.2:4101", "totalCores": 1,
         "removeTime": "2026-11-22T08:00:00.000GMT"},
    ]}
    monkeypatch.setattr(spark, "history_executors", executors.get)
    body = client_for(alice).get("/api/cluster/status/").json()
    assert body[0]["id"] == a.pk
    assert body[0]["jobs"] == [{"kind": "job", "id": job.pk, "owner": "alice", "cores": 2}]
