"""inference_bill: an inference job's batches are metered as they come and reach the ledger per
machine once a billing interval, so its ledger grows with machines x minutes, not batches."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from dmarket.credits.models import LedgerEntry, Run, UsageRecord
from dmarket.credits.services import usage_cost
from dmarket.inference.models import InferenceBatch, InferenceJob
from dmarket.inference.services import inference_bill, inference_finish
from dmarket.machines.models import Machine

from .util import running

pytestmark = pytest.mark.django_db


def test_a_10000_query_job_at_batch_1_posts_a_few_rows_per_machine_minute(
        alice, bob, settings, monkeypatch):
    settings.DMARKET_BILLING_INTERVAL = 60
    now = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    machines = [Machine.objects.create(user=bob, cores=2, memory_mb=1, address=f"127.0.0.{i}")
                for i in (2, 3)]
    ijob = running(alice, data="synthetic:10000", batch_size=1, max_credits="50")

    # Five minutes of the server's loop: a bill every 2 s, each after 66 or 67 one-query
    # batches, every second batch on the other machine; 3,600 core-ms each (a thousandth of
    # a core-hour's price).
    first = 0
    for tick in range(150):
        size = 67 if tick < 100 else 66
        InferenceBatch.objects.bulk_create([
            InferenceBatch(job=ijob, first_index=i, size=1, processing_ms=1.0, core_ms=3600,
                           executor="1", host="h", machine=machines[i % 2],
                           finished_at=now[0], started_at=now[0])
            for i in range(first, first + size)])
        first += size
        inference_bill(ijob)
        now[0] += timedelta(seconds=2)
    assert first == 10000
    inference_finish(ijob, InferenceJob.SUCCEEDED, "done")

    ledger = LedgerEntry.objects.filter(run=ijob.run)
    per_kind = dict(ledger.values_list("kind").annotate(n=Sum(1)).values_list("kind", "n"))
    # A charge and an earning per machine per minute (5 minutes, 2 machines), the hold and its
    # release: before metering, 20,002 rows.
    assert per_kind == {"hold": 1, "charge": 10, "earning": 10, "release": 1}
    # Exact: 36,000,000 core-ms at the job's price, charged as earned.
    run = Run.objects.get(pk=ijob.run_id)
    cost = usage_cost(36_000_000, run.price_per_core_hour, run.premium_rate)
    assert cost == 10 * run.price_per_core_hour * run.premium_rate
    assert run.cost == cost
    assert ledger.filter(kind="charge").aggregate(s=Sum("amount"))["s"] == -cost
    assert ledger.filter(kind="earning").aggregate(s=Sum("amount"))["s"] == cost
    # Every batch metered once; every usage record posted.
    assert not InferenceBatch.objects.filter(job=ijob, usage_key="").exists()
    assert UsageRecord.objects.filter(run=ijob.run).aggregate(s=Sum("core_ms"))["s"] == 36_000_000
    assert not UsageRecord.objects.filter(run=ijob.run, posted_key="").exists()


def test_billing_again_meters_nothing_twice(alice, bob, settings):
    settings.DMARKET_BILLING_INTERVAL = 0
    machine = Machine.objects.create(user=bob, cores=2, memory_mb=1, address="127.0.0.2")
    ijob = running(alice)
    InferenceBatch.objects.create(job=ijob, first_index=0, size=8, processing_ms=1.0,
                                  core_ms=3_600_000, machine=machine,
                                  finished_at=timezone.now(), started_at=timezone.now())
    assert inference_bill(ijob) == ijob.run.price_per_core_hour * ijob.run.premium_rate
    assert inference_bill(ijob) == 0
    assert UsageRecord.objects.filter(run=ijob.run).count() == 1
    assert LedgerEntry.objects.filter(run=ijob.run, kind="charge").count() == 1


def test_the_cap_counts_batches_not_posted_yet(alice, bob, settings):
    settings.DMARKET_BILLING_INTERVAL = 3600
    machine = Machine.objects.create(user=bob, cores=2, memory_mb=1, address="127.0.0.2")
    ijob = running(alice, max_credits="2")
    InferenceBatch.objects.create(job=ijob, first_index=0, size=8, processing_ms=1.0,
                                  core_ms=4 * 3_600_000, machine=machine,
                                  finished_at=timezone.now(), started_at=timezone.now())
    assert inference_bill(ijob) == 0
    ijob.refresh_from_db()
    assert (ijob.run.cost, ijob.cancel_requested, ijob.status_reason) == (
        0, True, "credit cap reached")
    inference_finish(ijob, InferenceJob.FAILED, "credit cap reached")
    ijob.refresh_from_db()
    assert ijob.run.cost == Decimal("2")
