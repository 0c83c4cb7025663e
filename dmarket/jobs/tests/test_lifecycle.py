"""The job lifecycle: the table of allowed moves, one winner per move, stops and settling."""

from decimal import Decimal

import pytest

from dmarket.common.tests.concurrency import at_once
from dmarket.common.tests.writes import field_writes
from dmarket.credits.models import Account
from dmarket.credits.services import run_hold
from dmarket.jobs import lifecycle
from dmarket.jobs.lifecycle import (BadTransition, job_claim, job_end_queued, job_finish,
                                    job_mark_running, job_mark_settled, job_move,
                                    job_request_stop, stop_outcome)
from dmarket.jobs.models import Job
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(alice, entry_file):
    job = make_job(user=alice, name="j", entry_file=entry_file,
                   max_credits=Decimal("5"), price_per_core_hour=1)
    run_hold(job.run, job.run.label)
    return job


def status_of(job):
    job.refresh_from_db()
    return job.status


def test_every_status_but_the_first_is_reached_only_from_the_table():
    assert lifecycle.sources_of(Job.STARTING) == (Job.QUEUED,)
    assert lifecycle.sources_of(Job.RUNNING) == (Job.STARTING,)
    assert lifecycle.sources_of(Job.SUCCEEDED) == (Job.STARTING, Job.RUNNING)
    assert lifecycle.sources_of(Job.CANCELLED) == (Job.QUEUED, Job.STARTING, Job.RUNNING)
    with pytest.raises(BadTransition, match="no job ever moves to QUEUED"):
        lifecycle.sources_of(Job.QUEUED)
    # An end is final: nothing leaves it.
    assert not set(Job.FINISHED) & set(lifecycle.TRANSITIONS)


def test_a_move_the_table_does_not_have_is_refused_before_any_write(job):
    with pytest.raises(BadTransition, match="never moves from QUEUED to SUCCEEDED"):
        job_move(job.pk, Job.SUCCEEDED, sources=(Job.QUEUED,))
    with pytest.raises(BadTransition, match="a queued job never ends as SUCCEEDED"):
        job_end_queued(job, Job.SUCCEEDED, "done")
    with pytest.raises(BadTransition, match="RUNNING is not an end"):
        job_finish(job, Job.RUNNING, "x")
    with pytest.raises(BadTransition, match="only an ended job is settled"):
        job_mark_settled(job)
    assert status_of(job) == Job.QUEUED


def test_a_job_goes_its_way_once(job):
    assert job_mark_running(job.pk) is False  # not claimed yet
    claimed = job_claim(job.pk, "launcher-a")
    assert (claimed.status, claimed.launcher) == (Job.STARTING, "launcher-a")
    assert job_claim(job.pk, "launcher-b") is None
    assert job_mark_running(job.pk) is True
    assert job_finish(job, Job.FAILED, "the driver exited with code 3", exit_code=3) is True
    # The second end (a launcher restarted meanwhile) changes nothing.
    assert job_finish(job, Job.SUCCEEDED, "the driver exited with code 0", exit_code=0) is False
    assert (job.status, job.exit_code, job.status_reason) == (
        Job.FAILED, 3, "the driver exited with code 3")
    assert job.finished_at is not None and job.settled_at is None
    assert job_mark_settled(job) is True
    first = job.settled_at
    assert job_mark_settled(job) is False and job.settled_at == first


@pytest.mark.django_db(transaction=True)
def test_of_launchers_claiming_one_job_at_once_one_wins(alice, entry_file):
    job = make_job(user=alice, name="j", entry_file=entry_file)
    claims = at_once(lambda i: job_claim(job.pk, f"launcher-{i}"))
    won = [f"launcher-{i}" for i, claim in enumerate(claims) if claim is not None]
    assert len(won) == 1
    job.refresh_from_db()
    assert job.launcher == won[0]


def test_a_stop_keeps_the_outcome_asked_first(job):
    assert job_request_stop(job, Job.FAILED, "x") is False  # queued: cancelled, not stopped
    job_claim(job.pk, "launcher-a")
    assert job_request_stop(job, Job.FAILED, "credit cap reached") is True
    assert job_request_stop(job, Job.CANCELLED, "cancelled by its owner") is False
    assert (job.status, job.cancel_requested) == (Job.STARTING, True)
    assert stop_outcome(job) == (Job.FAILED, "credit cap reached")
    job_finish(job, *stop_outcome(job))
    assert (job.status, job.status_reason) == (Job.FAILED, "credit cap reached")
    assert job_request_stop(job, Job.CANCELLED, "late") is False


def test_a_queued_job_ends_settled_with_its_hold_released_once(job, alice):
    assert Account.objects.get(user=alice).held == Decimal("5")
    assert job_end_queued(job, Job.FAILED, "its environment could not be built") is True
    assert job_end_queued(job, Job.CANCELLED, "cancelled by its owner") is False
    job.refresh_from_db()
    assert (job.status, job.status_reason) == (Job.FAILED, "its environment could not be built")
    assert job.finished_at == job.settled_at is not None
    assert Account.objects.get(user=alice).held == 0
    assert job.run.ledger.filter(kind="release").count() == 1


def test_a_claimed_job_no_longer_ends_as_queued(job, alice):
    job_claim(job.pk, "launcher-a")
    assert job_end_queued(job, Job.CANCELLED, "cancelled by its owner") is False
    assert status_of(job) == Job.STARTING
    assert Account.objects.get(user=alice).held == Decimal("5")


def test_no_module_but_the_lifecycle_writes_a_jobs_status():
    """Source scan: an UPDATE of jobs.Job rows that sets a lifecycle field, outside
    dmarket/jobs/lifecycle.py (tests and migrations aside)."""
    assert field_writes(("Job", "job", "locked"),
                        ("status", "stop_status", "cancel_requested", "settled_at"),
                        ("jobs", "lifecycle.py")) == []
