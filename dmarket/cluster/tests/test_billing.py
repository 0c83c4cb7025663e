"""The billing daemon: executors' lifetimes from the history server into ledger rows, once."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from dmarket.cluster.billing import billing_tick, executor_spans, job_settle, machine_resolver
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .util import drive, executors_registered, expected_bill, history_core_ms, settled, \
    share_workers, submit

# Shaped as Spark 4.3's history server answers (seen on the test cluster).
APP_DONE = {"id": "app-1", "attempts": [{"completed": True,
                                         "endTime": "2026-11-22T08:00:30.000GMT"}]}
APP_RUNNING = {"id": "app-1", "attempts": [{"completed": False,
                                            "endTime": "1969-12-31T23:59:59.999GMT"}]}
EXECUTORS = [
    {"id": "driver", "hostPort": "127.0.0.1:40000", "totalCores": 0,
     "addTime": "2026-11-22T08:00:00.000GMT", "executorLogs": {}},
    {"id": "0", "hostPort": "127.0.0.2:41000", "totalCores": 2,
     "addTime": "2026-11-22T08:00:05.000GMT",
     "executorLogs": {"stderr": "http://127.0.0.2:8081/logPage/?appId=app-1&executorId=0"}},
    {"id": "1", "hostPort": "127.0.0.3:42000", "totalCores": 1,
     "addTime": "2026-11-22T08:00:06.000GMT", "removeTime": "2026-11-22T08:00:16.500GMT",
     "removeReason": "worker lost",
     "executorLogs": {"stderr": "http://127.0.0.3:8081/logPage/?appId=app-1&executorId=1"}},
]


def at(seconds):
    return datetime(2026, 11, 22, 8, 0, seconds, tzinfo=timezone.utc)


def spans(job, app):
    return {e["id"]: (start, end) for e, start, end in executor_spans(job, app, EXECUTORS)}


def test_executor_spans_end_at_removal_else_at_the_applications_end():
    job = Job(status=Job.SUCCEEDED, finished_at=at(40))
    assert spans(job, APP_DONE) == {"0": (at(5), at(30)),
                                    "1": (at(6), at(16).replace(microsecond=500000))}


def test_running_application_executors_without_removal_have_no_end_yet():
    job = Job(status=Job.RUNNING)
    assert spans(job, APP_RUNNING) == {"0": (at(5), None),
                                       "1": (at(6), at(16).replace(microsecond=500000))}


def test_an_application_that_never_ended_bills_up_to_the_drivers_exit():
    # A driver killed with SIGKILL leaves its event log in progress for good.
    job = Job(status=Job.LOST, finished_at=at(20))
    assert spans(job, APP_RUNNING)["0"] == (at(5), at(20))


@pytest.mark.django_db
def test_machines_are_found_by_worker_id_then_by_address(make_user):
    owner = make_user()
    by_id = Machine.objects.create(user=owner, cores=2, memory_mb=1, address="10.9.9.9",
                                   worker_id="worker-a")
    by_address = Machine.objects.create(user=owner, cores=1, memory_mb=1, address="127.0.0.3")
    Machine.objects.create(user=owner, cores=1, memory_mb=1, address="127.0.0.3",
                           state=Machine.REMOVED)
    workers = [{"id": "worker-a", "webuiaddress": "http://127.0.0.2:8081"}]
    resolve = machine_resolver(workers)
    assert resolve(EXECUTORS[1]) == by_id
    assert resolve(EXECUTORS[2]) == by_address


@pytest.mark.django_db(transaction=True)
def test_billing_while_running_and_after_bills_each_executor_once(cluster, make_user):
    share_workers(cluster, make_user)
    job = submit(make_user("alice"), app_params=["--seconds", "6"])
    # Billing passes while the job runs, as the daemon makes them every few seconds.
    job = drive(job, lambda j: executors_registered(j, 2))
    for _ in range(3):
        billing_tick()

    job = drive(job, settled)
    rows = LedgerEntry.objects.filter(run=job.run).count()
    for _ in range(3):
        billing_tick()
        job_settle(job)

    assert LedgerEntry.objects.filter(run=job.run).count() == rows == 1 + 2 * 2 + 1
    assert job.run.cost == expected_bill(job, history_core_ms(job)) > Decimal(0)
