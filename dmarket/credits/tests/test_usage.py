"""Metered usage (dmarket.credits.services.usage_record / usage_post): usage is recorded as it
is seen and reaches the ledger per job x machine once a billing interval and at the job's end."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dmarket.cluster import billing
from dmarket.common.tests.concurrency import at_once
from dmarket.credits.models import LedgerEntry, Run, UsageRecord
from dmarket.credits.services import (Usage, run_bill_usage, usage_pending_cost,
                                      usage_post)
from dmarket.jobs.models import Job

from .test_ledger import account, make_job, make_machine, money

D = Decimal
HOUR = 3_600_000


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() under the test's control: recorded_at and the poster both read it."""
    now = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: now[0])

    def advance(seconds):
        now[0] += timedelta(seconds=seconds)
    advance.now = lambda: now[0]
    return advance


def charges(job):
    return list(LedgerEntry.objects.filter(run=job.run, kind=LedgerEntry.CHARGE).order_by("id")
                .values_list("machine_id", "amount"))


def test_running_usage_is_posted_per_machine_once_an_interval_old(alice, bob, settings, clock):
    settings.DMARKET_BILLING_INTERVAL = 60
    job = make_job(alice, max_credits="20")
    one, two = make_machine(bob), make_machine(bob)

    # Three executors end in the first minute: metered, not posted.
    assert run_bill_usage(job.run, [Usage("app:1", one, HOUR), Usage("app:2", one, HOUR),
                                Usage("app:3", two, HOUR // 2)], final=False) == 0
    assert charges(job) == []
    assert usage_pending_cost(job.run) == D("2.5")
    assert account(alice) == money("100", held="20")

    clock(59)
    assert usage_post(job.run, final=False) == 0
    clock(1)
    # A minute after the first: one charge per machine for all its usage so far.
    assert run_bill_usage(job.run, [Usage("app:1", one, HOUR), Usage("app:4", one, HOUR)],
                          final=False) == D("3.5")
    assert charges(job) == [(one.pk, D("-3")), (two.pk, D("-0.5"))]
    assert usage_pending_cost(job.run) == 0
    clock(30)
    run_bill_usage(job.run, [Usage("app:5", two, HOUR)], final=False)
    assert len(charges(job)) == 2

    # The job's end posts everything, whatever its age.
    assert usage_post(job.run) == D("1")
    assert charges(job) == [(one.pk, D("-3")), (two.pk, D("-0.5")), (two.pk, D("-1"))]
    job.refresh_from_db()
    assert job.run.cost == D("4.5")
    assert account(alice) == money("95.5", held="15.5", spent="4.5")
    assert account(bob) == money("104.5", earned="4.5")
    # Every record names the charge it was posted under, and that charge exists once.
    keys = set(UsageRecord.objects.filter(run=job.run).values_list("posted_key", flat=True))
    assert keys == set(LedgerEntry.objects.filter(run=job.run, kind=LedgerEntry.CHARGE)
                       .values_list("key", flat=True))
    assert UsageRecord.objects.filter(run=job.run).count() == 5


def test_a_posting_shows_what_it_posts(alice, bob):
    job = make_job(alice)
    machine = make_machine(bob)
    run_bill_usage(job.run, [Usage("app:1", machine, HOUR, 5), Usage("app:2", machine, 1000)])
    charge = LedgerEntry.objects.get(kind=LedgerEntry.CHARGE)
    first = UsageRecord.objects.filter(run=job.run).first()
    assert charge.key == f"charge:run:{job.run_id}:machine:{machine.pk}:usage:{first.pk}"
    assert charge.memo == (f"job {job.pk} on machine {machine.pk}: 2 usage records, "
                           "3601000 core-ms, 5 GPU-ms")
    earning = LedgerEntry.objects.get(kind=LedgerEntry.EARNING)
    assert earning.key == f"earning:run:{job.run_id}:machine:{machine.pk}:usage:{first.pk}"


def test_usage_past_the_cap_is_stamped_and_charged_nothing(alice, bob):
    job = make_job(alice, max_credits="1")
    machine = make_machine(bob)
    assert run_bill_usage(job.run, [Usage("a", machine, 3 * HOUR)]) == D("1")
    assert run_bill_usage(job.run, [Usage("b", machine, HOUR)]) == 0
    assert len(charges(job)) == 1
    assert not UsageRecord.objects.filter(run=job.run, posted_key="").exists()
    assert usage_pending_cost(job.run) == 0


@pytest.mark.django_db(transaction=True)
def test_two_posters_at_once_post_each_record_once(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    job = make_job(alice, max_credits="100")
    machines = [make_machine(bob) for _ in range(3)]
    run_bill_usage(job.run, [Usage(f"app:{i}", machines[i % 3], HOUR // 10) for i in range(60)],
                   final=False)
    results = at_once(lambda i: usage_post(Run.objects.get(pk=job.run_id)))
    assert all(isinstance(r, Decimal) for r in results), results
    assert sum(results) == D("6")
    assert sorted(amount for _, amount in charges(job)) == [D("-2")] * 3
    job.refresh_from_db()
    assert job.run.cost == D("6")
    assert account(bob)["earned"] == D("6")


def test_the_cap_counts_usage_not_posted_yet(alice, bob, settings, monkeypatch):
    """A running job whose ended executors (metered, not posted) and running ones reach its
    cap is stopped, as when every executor was posted at once."""
    settings.DMARKET_BILLING_INTERVAL = 3600
    machine = make_machine(bob)
    machine.worker_id = "worker-1"
    machine.save(update_fields=["worker_id"])
    job = make_job(alice, max_credits="10")
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, spark_app_id="app-1")
    job.refresh_from_db()
    now = timezone.now()

    def at(t):
        return (t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}GMT")
    ui = {"stdout": "http://192.0.2.10:8081/logPage/?appId=app-1&executorId=1&logType=stdout"}
    executors = [
        # 9 core-hours ended: 9 credits, metered but not posted within the interval.
        {"id": "1", "totalCores": 9, "addTime": at(now - timedelta(hours=2)),
         "removeTime": at(now - timedelta(hours=1)), "hostPort": "192.0.2.10:1",
         "executorLogs": ui},
        # and one core for an hour and more, still running.
        {"id": "2", "totalCores": 1, "addTime": at(now - timedelta(hours=1, minutes=1)),
         "hostPort": "192.0.2.10:2", "executorLogs": ui},
    ]
    monkeypatch.setattr(billing.spark, "history_of",
                        lambda app_id: ({"attempts": [{"completed": False}]}, executors))
    billing.job_bill_running(job, [{"id": "worker-1", "webuiaddress": "http://192.0.2.10:8081"}])

    job.refresh_from_db()
    assert charges(job) == [] and job.run.cost == 0
    assert usage_pending_cost(job.run) == D("9")
    assert (job.cancel_requested, job.stop_status, job.status_reason) == (
        True, Job.FAILED, "credit cap reached")
