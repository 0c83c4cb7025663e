"""POST /api/jobs/ naming dmarket:// files: each must exist and be readable by the
submitter, and is pinned to the version it names now, so the job reads what existed when it
was submitted. (The rest of submitting is in dmarket/jobs/tests/test_job_submit.py.)"""

import pytest

from dmarket.conftest import client_for
from dmarket.files.models import JobInput
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submit, submitted

from .util import uploaded


@pytest.fixture
def files(alice):
    uploaded(alice, "app.py", b"v1")
    uploaded(alice, "app.py", b"v2")
    uploaded(alice, "lib/util.zip", b"PK")
    uploaded(alice, "data.tar.gz", b"tgz")
    uploaded(alice, "conf.json", b"{}")


def test_files_are_pinned_to_their_latest_version(alice, files):
    job = submitted(alice, "dmarket://app.py", libs=["dmarket://lib/util.zip"],
                    archives=["dmarket://data.tar.gz#data"], files=["dmarket://conf.json"])

    assert (job.entry_file, job.libs, job.archives, job.files) == (
        "dmarket://app.py@2", ["dmarket://lib/util.zip@1"], ["dmarket://data.tar.gz@1#data"],
        ["dmarket://conf.json@1"])
    pins = JobInput.objects.filter(run=job.run).select_related("version__file")
    assert sorted((p.uri, p.version.file.name, p.version.version) for p in pins) == [
        ("dmarket://app.py@2", "app.py", 2), ("dmarket://conf.json@1", "conf.json", 1),
        ("dmarket://data.tar.gz@1", "data.tar.gz", 1),
        ("dmarket://lib/util.zip@1", "lib/util.zip", 1)]
    assert client_for(alice).get(f"/api/jobs/{job.pk}/").json()["entry_file"] == (
        "dmarket://app.py@2")


def test_an_explicit_version_is_kept(alice, files):
    job = submitted(alice, "dmarket://app.py@1")

    assert job.entry_file == "dmarket://app.py@1"
    assert JobInput.objects.get(run=job.run).version.version == 1


def test_a_file_named_twice_is_pinned_once(alice, files):
    job = submitted(alice, "dmarket://app.py", files=["dmarket://app.py@2"])

    assert JobInput.objects.filter(run=job.run).count() == 1


def test_plain_paths_and_uris_pass_unchanged(alice, files, entry_file):
    job = submitted(alice, entry_file, libs=["hdfs://nn/x.zip", "dmarket://lib/util.zip"],
                    files=["https://example.org/a.txt#a"])

    assert job.entry_file == entry_file
    assert job.libs == ["hdfs://nn/x.zip", "dmarket://lib/util.zip@1"]
    assert job.files == ["https://example.org/a.txt#a"]


def test_another_users_public_file(alice, bob, files):
    client_for(alice).patch("/api/files/lib/util.zip", {"public": True}, format="json")
    uploaded(bob, "main.py", b"x")

    job = submitted(bob, "dmarket://main.py", libs=["dmarket://~alice/lib/util.zip"])

    assert job.libs == ["dmarket://~alice/lib/util.zip@1"]


def assert_refused(response, errors):
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == errors, body
    assert Job.objects.count() == 0 and JobInput.objects.count() == 0


def test_another_users_private_file_is_refused(alice, bob, files):
    uploaded(bob, "main.py", b"x")

    response = submit(bob, "dmarket://main.py", libs=["dmarket://~alice/lib/util.zip"])

    message = "dmarket://~alice/lib/util.zip: no such file that you may read"
    assert_refused(response, {"libs": {"0": [message]}})
    assert response.json()["detail"] == f"libs.0: {message}"


def test_missing_files_and_versions_are_refused_naming_each(alice, files):
    response = submit(alice, "dmarket://nope.py", libs=["dmarket://lib/util.zip",
                                                         "dmarket://lib/util.zip@9"],
                      archives=["dmarket://gone.zip#g"])

    assert_refused(response, {
        "entry_file": ["dmarket://nope.py: no such file that you may read"],
        "libs": {"1": ["dmarket://lib/util.zip@9: no version 9 (the latest is 1)"]},
        "archives": {"0": ["dmarket://gone.zip: no such file that you may read"]},
    })


@pytest.mark.parametrize("uri, message", [
    ("dmarket://", "a file name must not be empty"),
    ("dmarket://a/../b.py", "'a/../b.py': use segments of letters, digits, '.', '_' and '-' "
                            "separated by '/', each starting with a letter, digit or '_'"),
    ("dmarket://app.py@0", "'0' is not a version number (1, 2, ...)"),
    ("dmarket://app.py@latest", "'latest' is not a version number (1, 2, ...)"),
    ("dmarket://~alice", "write another user's file as ~USER/NAME"),
    ("dmarket://jobs/x/results/a.py",
     "'dmarket://jobs/x/results/a.py': write a job's result as "
     "dmarket://jobs/ID/results/PATH"),
    ("dmarket://jobs/1/results/../a.py",
     "'dmarket://jobs/1/results/../a.py': the result path must be relative, without '.' "
     "or '..'"),
    ("dmarket://data.tar.gz", "'dmarket://data.tar.gz' should end with one of .py, .jar"),
])
def test_malformed_uris_are_refused(alice, files, uri, message):
    assert_refused(submit(alice, uri), {"entry_file": [message]})


def test_a_finished_jobs_result_file(alice, entry_file):
    first = submitted(alice, entry_file)
    Job.objects.filter(pk=first.pk).update(status=Job.SUCCEEDED)
    first.output_dir.mkdir(parents=True)
    (first.output_dir / "model.zip").write_bytes(b"PK")

    job = submitted(alice, entry_file,
                    archives=[f"dmarket://jobs/{first.pk}/results/model.zip#model"])

    assert job.archives == [f"dmarket://jobs/{first.pk}/results/model.zip#model"]
    pin = JobInput.objects.get(run=job.run)
    assert (pin.result_job_id, pin.result_path, pin.version) == (first.pk, "model.zip", None)


def test_result_files_that_cannot_be_read_are_refused(alice, bob, entry_file):
    running = submitted(alice, entry_file)
    bobs = submitted(bob, entry_file)
    Job.objects.filter(pk=bobs.pk).update(status=Job.SUCCEEDED)
    done = submitted(alice, entry_file)
    Job.objects.filter(pk=done.pk).update(status=Job.SUCCEEDED)
    Job.objects.exclude(pk__in=[running.pk, bobs.pk, done.pk]).delete()
    count = Job.objects.count()
    uris = [f"dmarket://jobs/{running.pk}/results/m.zip", f"dmarket://jobs/{bobs.pk}/results/m.zip",
            f"dmarket://jobs/{done.pk}/results/m.zip", "dmarket://jobs/999999/results/m.zip"]

    response = submit(alice, entry_file, archives=uris)

    assert response.status_code == 400
    assert response.json()["errors"] == {"archives": {
        "0": [f"{uris[0]}: job {running.pk} has not finished (QUEUED); its results are not "
              "final yet"],
        "1": [f"{uris[1]}: no job {bobs.pk} whose results you may read"],
        "2": [f"{uris[2]}: job {done.pk} has no result file m.zip"],
        "3": [f"{uris[3]}: no job 999999 whose results you may read"],
    }}
    assert Job.objects.count() == count


def test_a_retry_with_the_same_submission_id_keeps_the_first_pin(alice, files):
    first = submitted(alice, "dmarket://app.py", submission_id="run-1")
    uploaded(alice, "app.py", b"v3")

    response = submit(alice, "dmarket://app.py", submission_id="run-1")

    assert response.status_code == 200
    assert response.json()["id"] == first.pk
    assert response.json()["entry_file"] == "dmarket://app.py@2"
