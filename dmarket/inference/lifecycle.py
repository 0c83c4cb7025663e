"""Every change of an inference job's status, in one place.

    QUEUED ──claim──▶ RUNNING ──end──▶ SUCCEEDED, FAILED, CANCELLED
      │                                              ▲
      └──────────── end (cancelled before it ran) ───┘

As jobs.lifecycle does for Spark jobs: a job moves only along TRANSITIONS, each move one
conditional UPDATE naming the statuses it may leave, so of two processes making the same move
one wins. Its money (hold, bill, settling) follows its carrier job's lifecycle; services.py
ties the two together.
"""

from django.utils import timezone

from dmarket.jobs.lifecycle import BadTransition, job_mark_running, table_sources

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
    now = timezone.now()
    if not inference_move(ijob_id, InferenceJob.RUNNING, started_at=now):
        return None
    ijob = InferenceJob.objects.get(pk=ijob_id)
    job_mark_running(ijob.job_id, started_at=now)
    return ijob


def inference_end(ijob, status, reason):
    """Record the job's end, once (a queued job only as CANCELLED: it never ran). Returns
    whether this call recorded it."""
    if status not in InferenceJob.FINISHED:
        raise BadTransition(f"{status} is not an end")
    ended = inference_move(ijob.pk, status, status_reason=reason[:500],
                           finished_at=timezone.now())
    ijob.refresh_from_db()
    return ended
