"""POST and GET /api/inference/: submit an inference job, list them."""

from decimal import Decimal

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry, Run
from dmarket.files.models import JobInput
from dmarket.files.tests.util import uploaded
from dmarket.inference.models import InferenceJob
from dmarket.jobs.models import Job
from dmarket.jobs.tests.factories import make_job

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
                                 "cancel_requested", "settled_at")} == {
        "owner": "alice", "name": "inference resnet50:64", "model": "resnet50:64",
        "weights": "", "data": "synthetic:500", "batch_size": 8, "status": "QUEUED",
        "input_count": 500, "outputs": 0, "max_credits": "3.000000", "cost": "0.000000",
        "cancel_requested": False, "settled_at": None}
    # Its money is its run's, held like a job's; no job carries it.
    assert (ijob.run.label, ijob.run.max_credits) == (f"inference job {ijob.pk}", Decimal(3))
    assert not Job.objects.exists()
    hold = LedgerEntry.objects.get(run=ijob.run, kind=LedgerEntry.HOLD)
    assert hold.held == Decimal(3)


def test_csv_inputs_are_counted_one_per_row(alice):
    uploaded(alice, "test/part-00000.csv", b"label,p0,p1\n1,0,255\n2,3,4\n\n")
    ijob = submit(alice, data="dmarket://test/*.csv")
    assert ijob.input_count == 2


def test_a_model_and_data_in_the_file_store_are_pinned_at_submission(alice, bob):
    model = uploaded(alice, "models/lenet.keras", b"v1")
    uploaded(alice, "models/lenet.keras", b"v2")
    for name in ("digits/b.npy", "digits/a.png", "digits/c.csv", "digits/notes.txt",
                 "other/d.npy"):
        uploaded(alice, name, b"label,x\n1,2\n" if name.endswith(".csv") else b"x")
    uploaded(bob, "shared/w.h5", b"w", public="true")
    response = client_for(alice).post(URL, {
        "model": "models/lenet.keras@1", "data": "dmarket://digits", "batch_size": 2},
        format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["model"], body["data"], body["input_count"]) == (
        "dmarket://models/lenet.keras@1", "dmarket://digits", 3)
    ijob = InferenceJob.objects.get(pk=body["id"])
    assert ijob.data_files == [["digits/a.png", "dmarket://digits/a.png@1"],
                               ["digits/b.npy", "dmarket://digits/b.npy@1"],
                               ["digits/c.csv", "dmarket://digits/c.csv@1"]]
    assert sorted(ijob.run.inputs.values_list("uri", flat=True)) == [
        "dmarket://digits/a.png@1", "dmarket://digits/b.npy@1", "dmarket://digits/c.csv@1",
        "dmarket://models/lenet.keras@1"]
    assert ijob.run.inputs.get(uri="dmarket://models/lenet.keras@1").version == model
    # Pinned: not deleted while the job is unfinished.
    response = client_for(alice).delete("/api/files/models/lenet.keras?version=1")
    assert response.status_code == 409

    # Another user's public weights for a built-in model; a pattern over two folders.
    ijob = submit(alice, model="lenet", weights="dmarket://~bob/shared/w.h5",
                  data="dmarket://*/?.npy")
    assert ijob.weights == "dmarket://~bob/shared/w.h5@1"
    assert ijob.data_files == [["digits/b.npy", "dmarket://digits/b.npy@1"],
                               ["other/d.npy", "dmarket://other/d.npy@1"]]


def test_another_jobs_results_as_model_and_data(alice, bob, settings, tmp_path):
    settings.DMARKET_JOBS_DIR = tmp_path / "jobs"
    done = make_job(user=alice, name="train", entry_file="x.py", cores=1,
                    max_credits=1, status=Job.SUCCEEDED)
    (done.output_dir / "out").mkdir(parents=True)
    (done.output_dir / "mnist.keras").write_bytes(b"m")
    (done.output_dir / "out" / "x1.npy").write_bytes(b"x")
    (done.output_dir / "out" / "x2.npy").write_bytes(b"x")
    ijob = submit(alice, model=f"dmarket://jobs/{done.pk}/results/mnist.keras",
                  data=f"dmarket://jobs/{done.pk}/results/out")
    assert ijob.data_files == [
        [f"jobs/{done.pk}/results/out/x1.npy", f"dmarket://jobs/{done.pk}/results/out/x1.npy"],
        [f"jobs/{done.pk}/results/out/x2.npy", f"dmarket://jobs/{done.pk}/results/out/x2.npy"]]
    response = client_for(bob).post(URL, {"model": "lenet", "batch_size": 1,
                                          "data": f"dmarket://jobs/{done.pk}/results/*.npy"},
                                    format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"data": [
        f"dmarket://jobs/{done.pk}/results/*.npy: no job {done.pk} whose results you may read"]}


def test_operators_may_name_files_on_the_server(staff, tmp_path):
    (tmp_path / "part-00000.csv").write_text("label,p0,p1\n1,0,255\n2,3,4\n")
    ijob = submit(staff, data=str(tmp_path))
    assert (ijob.input_count, ijob.data_files) == (2, [])


def test_a_csv_that_is_not_text_is_a_400_naming_it(alice):
    uploaded(alice, "data/x.csv", b"\x89PNG\r\n\x1a\n\xff\xfe binary")
    response = client_for(alice).post(URL, {"model": "lenet", "data": "dmarket://data",
                                            "batch_size": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"data": ["data/x.csv is not a text CSV file"]}
    assert not InferenceJob.objects.exists() and not JobInput.objects.exists()


@pytest.mark.parametrize("field,value,message", [
    ("model", "alexnet", ("'alexnet' is neither a built-in model (lenet, resnet50, "
                          "inceptionv3) nor a .keras or .h5 model file in the file store "
                          "(dmarket://NAME)")),
    ("model", "resnet50:16", "'resnet50:16': the input side must be between 32 and 1024"),
    ("model", "/srv/m.keras", ("'/srv/m.keras': only operators may name files on the server; "
                               "put the model into the file store (dmarket files put) and "
                               "name it dmarket://NAME")),
    ("model", "dmarket://models/m.keras@3", ("dmarket://models/m.keras@3: no such file that "
                                             "you may read")),
    ("model", "dmarket://~bob/private.keras", ("dmarket://~bob/private.keras: no such file "
                                               "that you may read")),
    ("weights", "dmarket://w.h5", "dmarket://w.h5: no such file that you may read"),
    ("data", "synthetic:0", "'synthetic:0': between 1 and 10000000 synthetic inputs"),
    ("data", "/etc/*.csv", ("'/etc/*.csv': only operators may name files on the server; put "
                            "the data into the file store (dmarket files put) and name it "
                            "dmarket://NAME")),
    ("data", "dmarket://nothing/*.npy", ("dmarket://nothing/*.npy names no input files (.npy, "
                                         ".png, .jpg, .jpeg, .csv) that you may read")),
    ("data", "dmarket://a@b", "dmarket://a@b: 'b' is not a version number (1, 2, ...)"),
    ("batch_size", 0, "Ensure this value is greater than or equal to 1."),
])
def test_bad_fields_are_refused_by_name(alice, bob, field, value, message):
    uploaded(bob, "private.keras", b"m")
    body = {"model": "lenet", "data": "synthetic:10", "batch_size": 4, field: value}
    response = client_for(alice).post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": f"{field}: {message}", "errors": {field: [message]}}
    assert not (InferenceJob.objects.exists() or Job.objects.exists() or Run.objects.exists())
    assert not JobInput.objects.exists()


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
