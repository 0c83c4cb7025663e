"""POST and GET /api/inference/: submit an inference job, list them."""

from decimal import Decimal

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.inference.models import InferenceJob
from dmarket.jobs.models import Job

from .util import submit

pytestmark = pytest.mark.django_db
URL = "/api/inference/"


def test_submit_queues_the_job_and_holds_its_cap(alice):
    response = client_for(alice).post(URL, {"model": "resnet50:64", "data": "synthetic:500",
                                            "batch_size": 8, "max_credits": "3"},
                                      format="json")
    assert response.status_code == 201
    body = response.json()
    ijob = InferenceJob.objects.get(pk=body["id"])
    assert {k: body[k] for k in ("owner", "name", "model", "weights", "data", "batch_size",
                                 "status", "input_count", "outputs", "max_credits", "cost",
                                 "cancel_requested", "billing_job")} == {
        "owner": "alice", "name": "inference resnet50:64", "model": "resnet50:64",
        "weights": "", "data": "synthetic:500", "batch_size": 8, "status": "QUEUED",
        "input_count": 500, "outputs": 0, "max_credits": "3.000000", "cost": "0.000000",
        "cancel_requested": False, "billing_job": ijob.job_id}
    # Its money is a job's: held like one, and never QUEUED where launchers would take it.
    assert ijob.job.status == Job.STARTING
    hold = LedgerEntry.objects.get(job=ijob.job, kind=LedgerEntry.HOLD)
    assert hold.held == Decimal(3)


def test_csv_inputs_are_counted_one_per_row(alice, tmp_path):
    part = tmp_path / "part-00000.csv"
    part.write_text("label,p0,p1\n1,0,255\n2,3,4\n\n")
    ijob = submit(alice, data=str(tmp_path))
    assert ijob.input_count == 2


@pytest.mark.parametrize("field,value,message", [
    ("model", "alexnet", ("'alexnet' is not an absolute path (or a built-in model: lenet, "
                          "resnet50, inceptionv3)")),
    ("model", "resnet50:16", "'resnet50:16': the input side must be between 32 and 1024"),
    ("model", "/nonexistent/m.keras", "/nonexistent/m.keras is not a file the server can read"),
    ("model", "dmarket://lenet@3", ("'dmarket://lenet@3': the file store is not available "
                                    "yet; give an absolute path")),
    ("data", "synthetic:0", "'synthetic:0': between 1 and 10000000 synthetic inputs"),
    ("data", "/nonexistent/*.npy", ("'/nonexistent/*.npy' names no input files (.npy, .png, "
                                    ".jpg, .jpeg, .csv)")),
    ("batch_size", 0, "Ensure this value is greater than or equal to 1."),
])
def test_bad_fields_are_refused_by_name(alice, field, value, message):
    body = {"model": "lenet", "data": "synthetic:10", "batch_size": 4, field: value}
    response = client_for(alice).post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": f"{field}: {message}", "errors": {field: [message]}}
    assert not InferenceJob.objects.exists() and not Job.objects.exists()


def test_unknown_fields_are_refused(alice):
    response = client_for(alice).post(URL, {"model": "lenet", "data": "synthetic:1",
                                            "batch_size": 1, "cores": 4}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "cores: Unknown field.",
                               "errors": {"cores": ["Unknown field."]}}


def test_a_cap_beyond_available_credits_is_402(alice):
    response = client_for(alice).post(URL, {"model": "lenet", "data": "synthetic:1",
                                            "batch_size": 1, "max_credits": "1000"},
                                      format="json")
    assert response.status_code == 402
    assert response.json() == {"detail": "This job may cost up to 1000.000000 credits but only "
                               "100.000000 are available; lower max_credits or wait for "
                               "running jobs to finish."}


def test_anonymous_is_401():
    response = client_for().post(URL, {}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_list_shows_ones_own_jobs_newest_first(alice, bob):
    first = submit(alice)
    second = submit(alice, model="inceptionv3:75")
    submit(bob)
    body = client_for(alice).get(URL).json()
    assert body["count"] == 2
    assert [j["id"] for j in body["results"]] == [second.pk, first.pk]
    assert client_for(alice).get(URL, {"status": "running"}).json()["count"] == 0
    response = client_for(alice).get(URL, {"status": "sleeping"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"status": [
        "Unknown value 'SLEEPING'; one of QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED."]}
