"""Every change of a job's status, in one place.

    QUEUED ──claim──▶ STARTING ──mark running──▶ RUNNING
      │                  │                          │
      │ end queued       └─────────── finish ───────┤
      ▼                                             ▼
    FAILED, CANCELLED              SUCCEEDED, FAILED, CANCELLED, LOST
    (never ran: settled at once)                    │
                                                  settle (once: billed, hold released)

A job moves only along TRANSITIONS, and each move is one conditional UPDATE whose WHERE names
the statuses it may leave: of two processes making the same move, one wins and the other
changes nothing. A stop (its owner's cancel, its credit cap, its max runtime or disk quota, a
second application) does not change the status: it is asked for (request_stop) with the
outcome to record, and the process that runs the job stops it and finishes it with that
outcome. Settling is the billing daemon's: the launcher only records the end.
"""

import logging

from django.db import transaction
from django.utils import timezone

from dmarket.credits.services import run_release

from .models import Job

log = logging.getLogger(__name__)

ENDED_QUEUED = (Job.FAILED, Job.CANCELLED)
TRANSITIONS = {
    Job.QUEUED: (Job.STARTING, *ENDED_QUEUED),
    Job.STARTING: (Job.RUNNING, *Job.FINISHED),
    Job.RUNNING: Job.FINISHED,
}
# A stop can be asked for while the job runs or is about to.
STOPPABLE = (Job.STARTING, Job.RUNNING)


class BadTransition(ValueError):
    pass


def table_sources(transitions, status, noun):
    """The statuses of a table of moves (status -> the statuses it may move to) that lead to
    `status`; BadTransition naming the `noun` ("job") when none does."""
    sources = tuple(s for s, targets in transitions.items() if status in targets)
    if not sources:
        raise BadTransition(f"no {noun} ever moves to {status}")
    return sources


def sources_of(status):
    """The statuses a job may leave for `status`."""
    return table_sources(TRANSITIONS, status, "job")


def job_move(job_id, status, sources=None, **fields):
    """Move the job to `status` if it is in one of `sources` (by default every status that may
    lead there), writing `fields` with it. Returns whether it moved."""
    allowed = sources_of(status)
    if sources is not None:
        bad = set(sources) - set(allowed)
        if bad:
            raise BadTransition(f"a job never moves from {', '.join(sorted(bad))} to {status}")
        allowed = tuple(sources)
    return bool(Job.objects.filter(pk=job_id, status__in=allowed).update(status=status,
                                                                           **fields))


def job_claim(job_id, launcher_id):
    """A launcher takes a queued job. Returns the job, or None when another took it first."""
    if job_move(job_id, Job.STARTING, launcher=launcher_id, started_at=timezone.now(),
                status_reason=""):
        return Job.objects.get(pk=job_id)
    return None


def job_mark_running(job_id, **fields):
    """Its application is up."""
    return job_move(job_id, Job.RUNNING, **fields)


def job_finish(job, status, reason, exit_code=None, finished_at=None):
    """Record a started job's end, once: only a job still STARTING or RUNNING changes. The
    billing daemon settles it. Returns whether this call recorded it."""
    if status not in Job.FINISHED:
        raise BadTransition(f"{status} is not an end")
    changed = job_move(job.pk, status, sources=STOPPABLE, status_reason=reason[:500],
                       exit_code=exit_code, finished_at=finished_at or timezone.now())
    job.refresh_from_db()
    if changed:
        log.info("job %s: %s (%s)", job.pk, status, reason)
    return changed


def job_end_queued(job, status, reason):
    """End a job that never started: nothing ran, so it is settled at once and its hold is
    released in the same transaction. Returns whether it was still queued."""
    if status not in ENDED_QUEUED:
        raise BadTransition(f"a queued job never ends as {status}")
    with transaction.atomic():
        now = timezone.now()
        if not job_move(job.pk, status, sources=(Job.QUEUED,), status_reason=reason[:500],
                        finished_at=now, settled_at=now):
            return False
        job.refresh_from_db()
        run_release(job.run)
    return True


def row_request_stop(row, status, reason, stoppable):
    """Ask for the stop of a job of either kind (its model has cancel_requested, stop_status
    and status_reason) while it is in one of `stoppable`, with the outcome to record. Once: a
    stop already asked for keeps its own outcome. Returns whether this call asked for it."""
    asked = type(row).objects.filter(pk=row.pk, status__in=stoppable,
                                     cancel_requested=False).update(
        cancel_requested=True, stop_status=status, status_reason=reason[:500])
    row.refresh_from_db()
    return bool(asked)


def job_request_stop(job, status, reason):
    """Ask for a started job's stop, with the outcome to record (CANCELLED for its owner or an
    operator, FAILED for a limit). Returns whether this call asked for it."""
    if status not in Job.FINISHED:
        raise BadTransition(f"{status} is not an end")
    return row_request_stop(job, status, reason, STOPPABLE)


def job_stop_at_cap(job):
    """Its cost (posted, metered and running) reached its credit cap: it fails."""
    return job_request_stop(job, Job.FAILED, "credit cap reached")


def stop_outcome(row):
    """(status, reason) to finish a job, of either kind, whose stop was asked for."""
    return row.stop_status or Job.CANCELLED, row.status_reason or "cancelled"


def row_mark_settled(row, noun):
    """Stamp the end of the billing of an ended job of either kind (`noun`: "job"), once.
    Returns whether this call stamped it."""
    model = type(row)
    if row.status not in model.FINISHED:
        raise BadTransition(f"{noun} {row.pk} is {row.status}: only an ended {noun} is settled")
    stamped = model.objects.filter(pk=row.pk, status__in=model.FINISHED,
                                   settled_at__isnull=True).update(settled_at=timezone.now())
    row.refresh_from_db()
    return bool(stamped)


def job_mark_settled(job):
    """Stamp the end of its billing, once. Returns whether this call stamped it."""
    return row_mark_settled(job, "job")
