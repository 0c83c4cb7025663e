"""POST /api/inference/{id}/cancel/."""

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.inference.models import InferenceJob

from .util import running, submit

pytestmark = pytest.mark.django_db


def url(ijob):
    return f"/api/inference/{ijob.pk}/cancel/"


def test_a_queued_job_is_cancelled_at_once_and_its_hold_released(alice):
    ijob = submit(alice)
    response = client_for(alice).post(url(ijob))
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert response.json()["status_reason"] == "cancelled by its owner"
    ijob.refresh_from_db()
    assert ijob.status == "CANCELLED" and ijob.settled_at is not None
    assert LedgerEntry.objects.get(run=ijob.run, kind=LedgerEntry.RELEASE).held == -5
    assert client_for(alice).get("/api/credits/").json()["held"] == "0.000000"


def test_a_running_job_is_asked_to_stop(alice, staff):
    ijob = running(alice)
    response = client_for(staff).post(url(ijob))
    assert response.status_code == 202
    assert response.json()["status"] == "RUNNING"
    assert response.json()["cancel_requested"] is True
    ijob.refresh_from_db()
    assert ijob.status_reason == "cancelled by operator operator"


def test_a_finished_job_is_409_and_others_404(alice, bob):
    ijob = submit(alice)
    client_for(alice).post(url(ijob))
    response = client_for(alice).post(url(ijob))
    assert response.status_code == 409
    assert response.json() == {"detail": f"Inference job {ijob.pk} has already finished "
                               "(CANCELLED)."}
    assert client_for(bob).post(url(submit(alice))).status_code == 404
    assert InferenceJob.objects.filter(status="QUEUED").count() == 1
