"""GET /api/jobs/{id}/executors/ without Spark: the history server and the master are stood
in for (their answers as Spark writes them), to count the database queries of the listing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dmarket.cluster import spark
from dmarket.conftest import client_for
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db


def at(moment):
    """A time as the history server writes it: '2026-11-22T08:25:30.398GMT'."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "GMT"


def executors_on(machines, monkeypatch):
    """The job's application ran one ended executor on each machine: the history server and
    the master (its workers, by web UI) answer so."""
    now = timezone.now()
    executors = [{"id": "driver", "hostPort": "192.0.2.250:7000", "totalCores": 0,
                  "addTime": at(now - timedelta(hours=1))}]
    workers = []
    for i, machine in enumerate(machines, 1):
        ui = f"{machine.address}:8081"
        workers.append({"id": machine.worker_id, "webuiaddress": f"http://{ui}"})
        executors.append({
            "id": str(i), "hostPort": f"{machine.address}:4000{i}", "totalCores": 1,
            "addTime": at(now - timedelta(minutes=30)), "removeTime": at(now),
            "executorLogs": {"stderr": f"http://{ui}/logPage/?appId=app-1&executorId={i}"
                                       "&logType=stderr"}})
    monkeypatch.setattr(spark, "history_of",
                        lambda app_id, deadline=None: ({"attempts": [{"completed": False}]},
                                                       executors))
    monkeypatch.setattr(spark, "master_state", lambda: {"workers": workers})


def shared_machines(owner, n, start):
    return [Machine.objects.create(user=owner, cores=1, memory_mb=1024,
                                   address=f"192.0.2.{start + i}",
                                   worker_id=f"worker-{start + i}")
            for i in range(n)]


def test_list_queries_do_not_grow_with_executors(alice, bob, monkeypatch,
                                                 django_assert_num_queries):
    job = make_job(user=alice, name="job", entry_file="/tmp/app.py",
                   spark_app_id="app-1")
    url = f"/api/jobs/{job.pk}/executors/"
    client = client_for(alice)
    machines = shared_machines(bob, 1, 1)
    executors_on(machines, monkeypatch)
    client.get(url)  # stamps the token's last use, which waits a while after

    # The token, the job (its owner joined), the machines by the executors' worker ids, the
    # machines by their hosts.
    with django_assert_num_queries(4):
        few = client.get(url)
    assert [e["machine"] for e in few.json()] == [machines[0].pk]

    machines += shared_machines(bob, 5, 2)
    executors_on(machines, monkeypatch)
    # Today: 2 queries more for each machine past the first (14 for 6 machines).
    with django_assert_num_queries(4):
        many = client.get(url)
    assert [e["machine"] for e in many.json()] == [m.pk for m in machines]
