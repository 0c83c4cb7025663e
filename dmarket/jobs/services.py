from django.db import transaction
from django.utils import timezone

from dmarket.common.api import Conflict
from dmarket.credits.services import (account_lock, job_hold, job_release, machine_type_price,
                                      market_premium_rate)
from dmarket.files.services import job_inputs_pin, job_inputs_resolve

from .models import Job
from .serializers import submission_digest


def job_submit(user, fields):
    """Create a queued job and hold its credit cap, or return the job an earlier submit with
    the same submission_id created. Returns (job, created).

    Its dmarket:// files are pinned to the versions that exist now. Raises
    InsufficientCredits (nothing written) when available credits cannot cover the cap,
    ValidationError when it names a dmarket:// file the user cannot read, and Conflict when
    the submission_id was used for a different submission.
    """
    digest = submission_digest(fields)
    with transaction.atomic():
        # The account lock serialises one user's submits: two cannot both spend the same
        # credits, and two retries of one submission_id cannot both create a job.
        account_lock(user)
        if fields.get("submission_id"):
            existing = Job.objects.filter(user=user,
                                          submission_id=fields["submission_id"]).first()
            if existing is not None:
                if existing.submission_digest != digest:
                    raise Conflict(f"submission_id {fields['submission_id']!r} was already used "
                                   f"by job {existing.pk} with different fields.")
                return existing, False
        fields, pins = job_inputs_resolve(user, fields)
        job = Job.objects.create(
            user=user, submission_digest=digest,
            price_per_core_hour=machine_type_price(fields["machine_type"]),
            premium_rate=market_premium_rate(extra_jobs=1), **fields,
        )
        job_inputs_pin(job, pins)
        job_hold(job)
    return job, True


def job_cancel(job, reason="cancelled by its owner"):
    """Cancel a queued job at once; ask the launcher to stop a starting or running one.

    Returns True when the job is now CANCELLED, False when the cancel was only requested.
    Raises Conflict when the job has already finished.
    """
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            raise Conflict(f"Job {job.pk} has already finished ({locked.status}).")
        if locked.status == Job.QUEUED:
            locked.status = Job.CANCELLED
            locked.status_reason = reason
            # It never ran: nothing to bill, and its hold is released right here.
            locked.finished_at = locked.settled_at = timezone.now()
            locked.save(update_fields=["status", "status_reason", "finished_at", "settled_at"])
            job_release(locked)
            done = True
        elif not locked.cancel_requested:
            # The launcher stops it and records this outcome; a stop already asked for (its
            # credit cap was reached) keeps its own.
            locked.cancel_requested = True
            locked.stop_status = Job.CANCELLED
            locked.status_reason = reason
            locked.save(update_fields=["cancel_requested", "stop_status", "status_reason"])
            done = False
        else:
            done = False
    job.refresh_from_db()
    return done
