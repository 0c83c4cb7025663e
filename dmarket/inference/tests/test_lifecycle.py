"""The inference job lifecycle: the table of allowed moves, one winner per move, and no other
module writing a status."""

import pytest

from dmarket.common.tests.concurrency import at_once
from dmarket.common.tests.writes import field_writes
from dmarket.inference import lifecycle
from dmarket.inference.lifecycle import (BadTransition, inference_claim, inference_end,
                                         inference_mark_settled, inference_request_stop,
                                         inference_stop_at_cap)
from dmarket.inference.models import InferenceJob
from dmarket.inference.services import inference_finish
from dmarket.jobs.lifecycle import stop_outcome

from .util import submit

pytestmark = pytest.mark.django_db


def test_every_status_but_the_first_is_reached_only_from_the_table():
    assert lifecycle.sources_of(InferenceJob.RUNNING) == (InferenceJob.QUEUED,)
    assert lifecycle.sources_of(InferenceJob.SUCCEEDED) == (InferenceJob.RUNNING,)
    assert lifecycle.sources_of(InferenceJob.FAILED) == (InferenceJob.RUNNING,)
    assert lifecycle.sources_of(InferenceJob.CANCELLED) == (InferenceJob.QUEUED,
                                                            InferenceJob.RUNNING)
    with pytest.raises(BadTransition, match="no inference job ever moves to QUEUED"):
        lifecycle.sources_of(InferenceJob.QUEUED)
    assert not set(InferenceJob.FINISHED) & set(lifecycle.TRANSITIONS)


def test_a_job_is_claimed_once_and_ends_once(alice):
    ijob = submit(alice)
    with pytest.raises(BadTransition, match="RUNNING is not an end"):
        inference_end(ijob, InferenceJob.RUNNING, "x")

    claimed = inference_claim(ijob.pk)
    assert claimed.status == InferenceJob.RUNNING and claimed.started_at is not None
    assert inference_claim(ijob.pk) is None

    assert inference_end(claimed, InferenceJob.SUCCEEDED, "done") is True
    assert inference_end(claimed, InferenceJob.FAILED, "late") is False
    claimed.refresh_from_db()
    assert (claimed.status, claimed.status_reason) == (InferenceJob.SUCCEEDED, "done")


def test_a_queued_job_never_succeeds_nor_is_settled_as_if_it_had(alice):
    ijob = submit(alice)
    finished = inference_finish(ijob, InferenceJob.SUCCEEDED, "done")
    assert finished.status == InferenceJob.QUEUED and finished.settled_at is None

    finished = inference_finish(ijob, InferenceJob.CANCELLED, "cancelled by its owner")
    assert finished.status == InferenceJob.CANCELLED and finished.settled_at is not None


@pytest.mark.django_db(transaction=True)
def test_of_servers_claiming_one_job_at_once_one_wins(alice):
    ijob = submit(alice)
    claimed = at_once(lambda i: inference_claim(ijob.pk))
    assert sorted(type(c).__name__ for c in claimed) == ["InferenceJob", "NoneType",
                                                          "NoneType", "NoneType"]


def test_a_stop_is_asked_of_a_running_job_once_with_its_outcome(alice):
    ijob = submit(alice)
    with pytest.raises(BadTransition, match="never stopped as SUCCEEDED"):
        inference_request_stop(ijob, InferenceJob.SUCCEEDED, "x")
    # Queued: cancelled at once by inference_cancel, never asked to stop.
    assert inference_request_stop(ijob, InferenceJob.CANCELLED, "x") is False
    claimed = inference_claim(ijob.pk)
    assert inference_stop_at_cap(claimed) is True
    assert inference_request_stop(claimed, InferenceJob.CANCELLED, "cancelled") is False
    assert (claimed.cancel_requested, claimed.stop_status, claimed.status_reason,
            claimed.status) == (True, InferenceJob.FAILED, "credit cap reached",
                                InferenceJob.RUNNING)
    assert stop_outcome(claimed) == (InferenceJob.FAILED, "credit cap reached")

    finished = inference_finish(claimed, *stop_outcome(claimed))
    assert (finished.status, finished.status_reason) == (InferenceJob.FAILED,
                                                         "credit cap reached")
    assert finished.settled_at is not None and finished.run.cost == 0
    assert inference_mark_settled(finished) is False


def test_no_module_but_the_lifecycle_writes_an_inference_jobs_status():
    # (The stop request and the settled stamp: through jobs.lifecycle's row_ helpers.)
    assert field_writes(("InferenceJob", "ijob", "locked"),
                        ("status", "stop_status", "cancel_requested", "settled_at"),
                        ("inference", "lifecycle.py")) == []
