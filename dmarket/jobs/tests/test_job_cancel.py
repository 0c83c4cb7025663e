"""POST /api/jobs/{id}/cancel/: a queued job is cancelled at once and its hold released; a
starting or running one is asked to stop; a finished one cannot be cancelled."""

import pytest
from django.utils import timezone

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job

from .util import ANONYMOUS, NO_JOB, credits_of, iso, job_json, ledger_kinds, submitted

HELD_10 = {"balance": "100.000000", "held": "10.000000", "available": "90.000000",
           "earned": "0.000000", "spent": "0.000000"}
NOTHING_HELD = {"balance": "100.000000", "held": "0.000000", "available": "100.000000",
                "earned": "0.000000", "spent": "0.000000"}


def cancel(user, job):
    return client_for(user).post(f"/api/jobs/{job.pk}/cancel/")


def test_owner_cancels_a_queued_job_at_once(alice, entry_file):
    job = submitted(alice, entry_file)

    response = cancel(alice, job)

    job.refresh_from_db()
    assert response.status_code == 200
    assert response.json() == job_json(job.pk, "alice", entry_file, iso(job.created_at),
                                       status="CANCELLED",
                                       status_reason="cancelled by its owner",
                                       finished_at=iso(job.finished_at),
                                       settled_at=iso(job.finished_at))
    assert job.finished_at is not None
    assert ledger_kinds(alice) == ["grant", "hold", "release"]
    release = LedgerEntry.objects.get(kind="release")
    assert (release.run_id, release.amount, str(release.held), release.key) == (
        job.run_id, 0, "-10.000000", f"release:run:{job.run_id}")
    assert credits_of(alice) == NOTHING_HELD


def test_release_returns_only_the_cancelled_jobs_hold(alice, entry_file):
    kept = submitted(alice, entry_file, max_credits="30")
    gone = submitted(alice, entry_file, max_credits="20")

    assert cancel(alice, gone).status_code == 200

    assert credits_of(alice)["held"] == "30.000000"
    assert Job.objects.get(pk=kept.pk).status == "QUEUED"


def test_staff_cancels_anyones_queued_job(alice, staff, entry_file):
    job = submitted(alice, entry_file)

    response = cancel(staff, job)

    job.refresh_from_db()
    assert response.status_code == 200
    assert response.json() == job_json(job.pk, "alice", entry_file, iso(job.created_at),
                                       status="CANCELLED",
                                       status_reason="cancelled by operator operator",
                                       finished_at=iso(job.finished_at),
                                       settled_at=iso(job.finished_at))
    assert ledger_kinds(alice) == ["grant", "hold", "release"]
    assert ledger_kinds(staff) == ["grant"]
    assert credits_of(alice) == NOTHING_HELD


def test_another_user_cannot_cancel(alice, bob, entry_file):
    job = submitted(alice, entry_file)

    response = cancel(bob, job)

    assert response.status_code == 404
    assert response.json() == NO_JOB
    assert Job.objects.get(pk=job.pk).status == "QUEUED"
    assert ledger_kinds(alice) == ["grant", "hold"]


def test_anonymous_cannot_cancel(alice, entry_file):
    job = submitted(alice, entry_file)

    response = client_for().post(f"/api/jobs/{job.pk}/cancel/")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS
    assert Job.objects.get(pk=job.pk).status == "QUEUED"


def test_cancel_of_a_nonexistent_job_is_404(alice, staff):
    for user in (alice, staff):
        response = client_for(user).post("/api/jobs/999999/cancel/")
        assert response.status_code == 404
        assert response.json() == NO_JOB


def test_cancel_is_post_only(alice, entry_file):
    job = submitted(alice, entry_file)

    response = client_for(alice).get(f"/api/jobs/{job.pk}/cancel/")

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.'}


def test_cancel_twice_is_409_and_releases_once(alice, entry_file):
    job = submitted(alice, entry_file)
    assert cancel(alice, job).status_code == 200

    response = cancel(alice, job)

    assert response.status_code == 409
    assert response.json() == {"detail": f"Job {job.pk} has already finished (CANCELLED)."}
    assert LedgerEntry.objects.filter(run=job.run, kind="release").count() == 1
    assert ledger_kinds(alice) == ["grant", "hold", "release"]
    assert credits_of(alice) == NOTHING_HELD


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "LOST"])
def test_cancel_of_a_finished_job_is_409_and_changes_nothing(alice, entry_file, status):
    job = submitted(alice, entry_file)
    Job.objects.filter(pk=job.pk).update(status=status, finished_at=timezone.now())

    response = cancel(alice, job)

    assert response.status_code == 409
    assert response.json() == {"detail": f"Job {job.pk} has already finished ({status})."}
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (status, False)
    assert ledger_kinds(alice) == ["grant", "hold"]


@pytest.mark.parametrize("status", ["STARTING", "RUNNING"])
def test_cancel_of_a_started_job_is_202_and_only_requested(alice, entry_file, status):
    job = submitted(alice, entry_file)
    # As the launcher would have it: the job has left the queue.
    Job.objects.filter(pk=job.pk).update(status=status)

    response = cancel(alice, job)

    assert response.status_code == 202
    assert response.json() == job_json(job.pk, "alice", entry_file, iso(job.created_at),
                                       status=status, cancel_requested=True,
                                       status_reason="cancelled by its owner")
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.finished_at) == (status, True, None)
    # What the launcher records when it has stopped the driver.
    assert job.stop_status == Job.CANCELLED
    # The launcher releases the hold when the job stops; until then it stays.
    assert ledger_kinds(alice) == ["grant", "hold"]
    assert credits_of(alice) == HELD_10


def test_cancel_requested_twice_is_still_202(alice, entry_file):
    job = submitted(alice, entry_file)
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING)

    first = cancel(alice, job)
    second = cancel(alice, job)

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json() == first.json()
    assert ledger_kinds(alice) == ["grant", "hold"]


def test_staff_requests_cancel_of_a_running_job(alice, staff, entry_file):
    job = submitted(alice, entry_file)
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING)

    response = cancel(staff, job)

    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    assert response.json()["status"] == "RUNNING"
