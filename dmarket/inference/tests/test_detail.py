"""GET and PATCH /api/inference/{id}/: a job, and its batch size."""

import pytest

from dmarket.conftest import client_for
from dmarket.inference.models import InferenceJob
from dmarket.inference.services import inference_finish

from .util import running, submit

pytestmark = pytest.mark.django_db


def url(ijob):
    return f"/api/inference/{ijob.pk}/"


def test_owner_and_operators_see_a_job_others_get_404(alice, bob, staff):
    ijob = submit(alice)
    assert client_for(alice).get(url(ijob)).json()["id"] == ijob.pk
    assert client_for(staff).get(url(ijob)).status_code == 200
    response = client_for(bob).get(url(ijob))
    assert response.status_code == 404
    assert response.json() == {"detail": "No InferenceJob matches the given query."}


def test_batch_size_changes_while_it_runs(alice):
    ijob = running(alice, batch_size=8)
    response = client_for(alice).patch(url(ijob), {"batch_size": 32}, format="json")
    assert response.status_code == 200
    assert response.json()["batch_size"] == 32
    ijob.refresh_from_db()
    assert ijob.batch_size == 32


def test_a_bad_batch_size_or_another_field_is_400(alice):
    ijob = submit(alice)
    response = client_for(alice).patch(url(ijob), {"batch_size": 5000}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "batch_size: Ensure this value is less than or equal "
                               "to 4096.", "errors": {"batch_size": [
                                   "Ensure this value is less than or equal to 4096."]}}
    response = client_for(alice).patch(url(ijob), {"batch_size": 4, "model": "resnet50"},
                                       format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"model": ["Unknown field."]}


def test_a_finished_jobs_batch_size_is_409(alice):
    ijob = running(alice)
    inference_finish(ijob, InferenceJob.SUCCEEDED, "done")
    response = client_for(alice).patch(url(ijob), {"batch_size": 4}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Inference job {ijob.pk} has already finished "
                               "(SUCCEEDED)."}


def test_another_users_job_cannot_be_changed(alice, bob):
    ijob = submit(alice)
    assert client_for(bob).patch(url(ijob), {"batch_size": 4}, format="json").status_code == 404
