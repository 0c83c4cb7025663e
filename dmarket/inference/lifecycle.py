"""Every change of an inference job's status, in one place.

    QUEUED ──claim──▶ RUNNING ──end──▶ SUCCEEDED, FAILED, CANCELLED
      │                                              ▲
      └──────────── end (cancelled before it ran) ───┘

As jobs.lifecycle does for Spark jobs: a job moves only along TRANSITIONS, each move one
conditional UPDATE naming the statuses it may leave, so of two processes making the same move
one wins. A stop of a running job (its owner's cancel, its credit cap) is asked for with the
outcome to record, and the inference server, which runs it, ends it with that outcome. Its
money is its run's (dmarket.credits): services.py bills it and settles it once it has ended.
"""

from django.utils import timezone

from dmarket.jobs.lifecycle import (BadTransition, row_mark_settled, row_request_stop,
                                    table_sources)

from .models import InferenceJob

TRANSITIONS = {
    InferenceJob.QUEUED: (InferenceJob.RUNNING, InferenceJob.CANCELLED),
    InferenceJob.RUNNING: InferenceJob.FINISHED,
}


def sources_of(status):
    """The statuses an inference job may leave for `status`."""
    return table_sources(TRANSITIONS, status, "inference job")


def inference_move(ijob_id, status, **fields):
    """Move the job to `status` from whichever status may lead there, writing `fields` with
    it. Returns whether it moved."""
    return bool(InferenceJob.objects.filter(pk=ijob_id, status__in=sources_of(status))
                .update(status=status, **fields))


def inference_claim(ijob_id):
    """The inference server takes a queued job (one winner). Returns it, or None."""
    if not inference_move(ijob_id, InferenceJob.RUNNING, started_at=timezone.now()):
        return None
    return InferenceJob.objects.get(pk=ijob_id)


def inference_end(ijob, status, reason):
    """Record the job's end, once (a queued job only as CANCELLED: it never ran). Returns
    whether this call recorded it."""
    if status not in InferenceJob.FINISHED:
        raise BadTransition(f"{status} is not an end")
    ended = inference_move(ijob.pk, status, status_reason=reason[:500],
                           finished_at=timezone.now())
    ijob.refresh_from_db()
    return ended


def inference_request_stop(ijob, status, reason):
    """Ask for a running job's stop, with the outcome to record (CANCELLED for its owner,
    FAILED for its cap). Once: a stop already asked for keeps its own outcome. Returns whether
    this call asked for it."""
    if status not in (InferenceJob.CANCELLED, InferenceJob.FAILED):
        raise BadTransition(f"an inference job is never stopped as {status}")
    return row_request_stop(ijob, status, reason, (InferenceJob.RUNNING,))


def inference_stop_at_cap(ijob):
    """Its cost (posted and metered) reached its credit cap: it fails."""
    return inference_request_stop(ijob, InferenceJob.FAILED, "credit cap reached")


def inference_mark_settled(ijob):
    """Stamp the end of its billing, once. Returns whether this call stamped it."""
    return row_mark_settled(ijob, "inference job")
