"""Each job on its own in the daemons' loops: a job that makes the launcher's or billing's
pass raise is logged and backed off, every other job goes on, and after
DMARKET_ROW_POISON_AFTER failures in a row its status_reason says so."""

import pytest

from dmarket.cluster import billing, launcher
from dmarket.common.daemon import RowGuard
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic of the guards, moved by hand."""
    from dmarket.common import daemon

    now = {"t": 1000.0}
    monkeypatch.setattr(daemon.time, "monotonic", lambda: now["t"])
    return now


@pytest.fixture
def quiet_cluster(settings):
    # Nothing answers there: the passes see no master (and apply no firewall rules).
    settings.DMARKET_SANDBOX = "off"
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:9"
    settings.DMARKET_HISTORY_URL = "http://127.0.0.1:9"
    settings.DMARKET_LAUNCHER_ID = "guarded"
    settings.DMARKET_ROW_POISON_AFTER = 3
    settings.DMARKET_ROW_BACKOFF_MAX = 4


def running_jobs(alice, entry_file, count):
    jobs = [submitted(alice, entry_file, max_credits="1") for _ in range(count)]
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(
        status=Job.RUNNING, launcher="guarded", spark_app_id="app-1-1")
    return [Job.objects.get(pk=j.pk) for j in jobs]


def test_a_guard_backs_off_a_failing_row_and_goes_on_with_the_others(clock, settings):
    settings.DMARKET_ROW_POISON_AFTER = 3
    settings.DMARKET_ROW_BACKOFF_MAX = 4
    marked = []
    guard = RowGuard("test", mark=lambda row, e: marked.append((row.pk, str(e))))

    class Row:
        def __init__(self, pk):
            self.pk = pk

    rows = [Row(1), Row(2), Row(3)]
    calls = []

    def handle(row):
        calls.append(row.pk)
        if row.pk == 2:
            raise RuntimeError("poison")
        return row.pk * 10

    assert guard.run(rows, handle) == [10, 30]
    assert guard.run(rows, handle) == [10, 30]        # 2 waits 1 s
    clock["t"] += 1
    assert guard.run(rows, handle) == [10, 30]        # tried again; now waits 2 s
    clock["t"] += 1.5
    guard.run(rows, handle)
    assert calls.count(2) == 2 and marked == []
    clock["t"] += 1
    guard.run(rows, handle)                           # the third failure marks it
    assert marked == [(2, "poison")]
    clock["t"] += 4                                   # at most DMARKET_ROW_BACKOFF_MAX
    guard.run(rows, handle)
    assert (calls.count(2), marked) == (4, [(2, "poison")])
    assert calls.count(1) == calls.count(3) == 6


def test_the_launcher_follows_the_other_jobs_when_one_raises(
        alice, entry_file, monkeypatch, clock, quiet_cluster):
    bad, good = running_jobs(alice, entry_file, 2)
    followed = []

    def follow(job, state=None):
        followed.append(job.pk)
        if job.pk == bad.pk:
            raise ValueError("a row the launcher cannot handle")

    monkeypatch.setattr(launcher, "job_follow", follow)
    for _ in range(3):
        launcher.launcher_tick()
        clock["t"] += 10

    assert followed.count(good.pk) == 3
    assert followed.count(bad.pk) == 3
    bad.refresh_from_db()
    assert bad.status_reason == ("the launcher fails on this job and retries it: ValueError: "
                                 "a row the launcher cannot handle")
    good.refresh_from_db()
    assert good.status_reason == ""


def test_billing_bills_the_other_jobs_when_one_raises(alice, entry_file, monkeypatch, clock,
                                                     quiet_cluster):
    bad, good = running_jobs(alice, entry_file, 2)
    billed = []

    def bill(job, workers):
        billed.append(job.pk)
        if job.pk == bad.pk:
            raise KeyError("executor")

    monkeypatch.setattr(billing, "job_bill_running", bill)
    billing.billing_tick()
    billing.billing_tick()

    # The bad one waits out its backoff; the good one is billed every pass.
    assert (billed.count(good.pk), billed.count(bad.pk)) == (2, 1)
    assert bad.pk in billing._guards["bill"].backed_off()


def test_a_start_that_raises_fails_that_job_and_the_next_one_starts(
        alice, bob, entry_file, monkeypatch, clock, quiet_cluster):
    first = submitted(alice, entry_file, max_credits="1")
    second = submitted(bob, entry_file, max_credits="1")
    started = []

    def start(job):
        started.append(job.pk)
        if job.pk == first.pk:
            raise RuntimeError("boom")

    monkeypatch.setattr(launcher, "job_start", start)
    launcher.launcher_tick()

    first.refresh_from_db()
    assert (first.status, first.status_reason) == (
        Job.FAILED, "the driver could not start: an error of the launcher's (its log has it)")
    assert started == [first.pk, second.pk]
