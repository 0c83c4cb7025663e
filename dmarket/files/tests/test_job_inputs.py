"""GET /api/jobs/{id}/inputs/{input}/{credential}/{name}: what Spark fetches for a job's
dmarket:// files. The credential opens only that job's pinned files, only while it is
unfinished."""

import pytest

from dmarket.cluster import spark
from dmarket.conftest import client_for
from dmarket.files.models import JobInput
from dmarket.jobs.inputs import job_input_urls
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted

from .util import uploaded


def fetch(url):
    response = client_for().get(url.replace("http://public.example", ""))
    if response.status_code == 200:
        response.body = b"".join(response.streaming_content)
    return response


@pytest.fixture
def job(alice, settings):
    settings.DMARKET_PUBLIC_URL = "http://public.example"
    uploaded(alice, "app.py", b"print('v1')")
    uploaded(alice, "lib/helpers.py", b"X = 1")
    return submitted(alice, "dmarket://app.py", libs=["dmarket://lib/helpers.py"])


def urls(job):
    url = job_input_urls(job)
    return url(job.entry_file, "entry_file"), url(job.libs[0], "libs")


def test_urls_name_the_file_last(job):
    entry, lib = urls(job)
    token = job.files_token
    inputs = {i.uri: i.pk for i in JobInput.objects.filter(run=job.run)}

    assert entry == (f"http://public.example/api/jobs/{job.pk}/inputs/"
                     f"{inputs['dmarket://app.py@1']}/{token}/app.py")
    assert lib == (f"http://public.example/api/jobs/{job.pk}/inputs/"
                   f"{inputs['dmarket://lib/helpers.py@1']}/{token}/helpers.py")


@pytest.mark.parametrize("status", Job.UNFINISHED)
def test_an_unfinished_job_reads_its_files_without_a_user_token(job, status):
    Job.objects.filter(pk=job.pk).update(status=status)
    entry, lib = urls(job)

    assert (fetch(entry).status_code, fetch(entry).body) == (200, b"print('v1')")
    assert fetch(lib).body == b"X = 1"


def test_it_reads_the_pinned_version_not_a_newer_one(job, alice):
    uploaded(alice, "app.py", b"print('v2')")

    assert fetch(urls(job)[0]).body == b"print('v1')"


@pytest.mark.parametrize("status", Job.FINISHED)
def test_the_credential_expires_when_the_job_ends(job, status):
    entry, _ = urls(job)
    Job.objects.filter(pk=job.pk).update(status=status)

    response = fetch(entry)

    assert response.status_code == 403
    assert response.json() == {"detail": f"This credential expired when job {job.pk} "
                                         f"finished ({status})."}


def test_a_wrong_credential_is_403(job):
    entry, _ = urls(job)

    response = fetch(entry.replace(job.files_token, "0" * 64))

    assert response.status_code == 403
    assert response.json() == {"detail": "This is not a valid credential for this job's files."}


def test_one_jobs_credential_does_not_open_another_jobs_files(job, alice):
    uploaded(alice, "other.py", b"other")
    other = submitted(alice, "dmarket://other.py")
    other_input = JobInput.objects.get(run=other.run)
    token = job.files_token

    # job's credential with other's input: not a file job names.
    response = fetch(f"/api/jobs/{job.pk}/inputs/{other_input.pk}/{token}/other.py")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Job {job.pk} names no such file."}
    # job's credential on other's URL: not other's credential.
    response = fetch(f"/api/jobs/{other.pk}/inputs/{other_input.pk}/{token}/other.py")
    assert response.status_code == 403


def test_another_jobs_result_file(alice, entry_file, settings):
    settings.DMARKET_PUBLIC_URL = "http://public.example"
    first = submitted(alice, entry_file)
    Job.objects.filter(pk=first.pk).update(status=Job.SUCCEEDED)
    (first.output_dir / "model").mkdir(parents=True)
    (first.output_dir / "model" / "model.zip").write_bytes(b"PK weights")
    second = submitted(alice, entry_file,
                       archives=[f"dmarket://jobs/{first.pk}/results/model/model.zip#model"])

    url = job_input_urls(second)(second.archives[0], "archives")

    assert url.endswith("/model.zip#model")
    assert fetch(url.split("#")[0]).body == b"PK weights"


def test_spark_submit_gets_the_urls(alice, settings):
    settings.DMARKET_PUBLIC_URL = "http://public.example"
    for name in ("app.py", "util.zip", "lib.jar", "data.tar.gz", "conf.json"):
        uploaded(alice, name, b"x")
    job = submitted(alice, "dmarket://app.py",
                    libs=["dmarket://util.zip", "dmarket://lib.jar", "hdfs://nn/x.py"],
                    archives=["dmarket://data.tar.gz#data"], files=["dmarket://conf.json#c"])
    prefix = f"http://public.example/api/jobs/{job.pk}/inputs/"
    token = job.files_token
    ids = {i.uri.split("//")[1].split("@")[0]: i.pk for i in JobInput.objects.filter(run=job.run)}

    def url(name):
        return f"{prefix}{ids[name]}/{token}/{name}"

    argv = spark.submit_argv(job)

    assert argv[argv.index("--py-files") + 1] == f"{url('util.zip')},hdfs://nn/x.py"
    assert argv[argv.index("--jars") + 1] == url("lib.jar")
    assert argv[argv.index("--archives") + 1] == url("data.tar.gz") + "#data"
    assert argv[argv.index("--files") + 1] == url("conf.json") + "#c"
    assert argv[-1] == url("app.py")


def test_a_job_without_dmarket_files_has_no_credential(alice, entry_file):
    job = submitted(alice, entry_file)
    job.refresh_from_db()

    response = fetch(f"/api/jobs/{job.pk}/inputs/1/{'0' * 64}/app.py")

    assert job.files_token == ""
    assert response.status_code == 403
    assert response.json() == {"detail": "This is not a valid credential for this job's files."}


def test_a_job_that_does_not_exist_is_403_like_a_wrong_credential(db):
    response = fetch(f"/api/jobs/999999/inputs/1/{'0' * 64}/app.py")

    assert response.status_code == 403
    assert response.json() == {"detail": "This is not a valid credential for this job's files."}


def test_each_job_has_its_own_random_credential(job, alice):
    other = submitted(alice, "dmarket://app.py")

    assert len(job.files_token) == len(other.files_token) == 64
    assert job.files_token != other.files_token
