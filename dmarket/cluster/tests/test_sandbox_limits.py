"""Each limit of a driver's sandbox, pushed by a real driver under spark-submit (it starts no
Spark session, so no cluster is needed): past it the job fails with a reason that says so,
or the attempt is refused inside the sandbox, and nothing else is harmed."""

import json
import shutil
import time

import pytest

from dmarket.cluster import sandbox
from dmarket.cluster.billing import billing_tick
from dmarket.cluster.launcher import launcher_tick
from dmarket.jobs.models import Job

from .conftest import APPS
from .util import read_log, submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="no Java")]


def limits_job(user, *params, **fields):
    return submit(user, entry_file=str(APPS / "limits.py"), app_params=list(params), cores=1,
                  **fields)


def finish(job, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher_tick()
        billing_tick()  # the billing daemon settles
        job.refresh_from_db()
        if job.settled_at is not None:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} {job.status} after {timeout} s:\n{read_log(job)}")


def report_of(job):
    return json.loads((job.output_dir / "report.json").read_text())


def needs_cgroup(kind):
    dirs, missing = sandbox.cgroups_create(sandbox.Profile(
        name="probe", env={}, chdir="/", memory_mb=1024, max_procs=100))
    sandbox.cgroups_remove(dirs)
    if kind in missing or not dirs:
        pytest.skip(f"no {kind} cgroup can be made here")


def test_a_driver_past_its_memory_fails_saying_so(make_user, settings):
    needs_cgroup("memory")
    settings.DMARKET_DRIVER_MEMORY_OVERHEAD_MB = 512
    job = finish(limits_job(make_user("alice"), "memory", "1500", driver_memory_mb=512))

    assert job.status == Job.FAILED
    assert job.status_reason.startswith(
        "the driver passed its memory limit of 512 MB (+512 MB for its Python) and was killed"
    ), job.status_reason
    assert not (job.output_dir / "report.json").exists()


def test_within_its_memory_the_same_driver_succeeds(make_user, settings):
    settings.DMARKET_DRIVER_MEMORY_OVERHEAD_MB = 512
    job = finish(limits_job(make_user("alice"), "memory", "200", driver_memory_mb=512))

    assert job.status == Job.SUCCEEDED, read_log(job)
    assert report_of(job) == {"memory_mb": 200}


def test_a_driver_cannot_start_more_than_its_processes(make_user, settings):
    needs_cgroup("pids")
    settings.DMARKET_SANDBOX_MAX_PROCS = 300
    job = finish(limits_job(make_user("alice"), "threads", "1000"))

    assert job.status == Job.SUCCEEDED, read_log(job)
    report = report_of(job)
    assert report["threads"] < 300 and report["error"] == "can't start new thread"


def test_a_driver_cannot_open_more_than_its_files(make_user, settings):
    # spark-submit's JVM holds its few hundred jars open.
    settings.DMARKET_SANDBOX_MAX_OPEN_FILES = 1024
    job = finish(limits_job(make_user("alice"), "files", "3000"))

    assert job.status == Job.SUCCEEDED, read_log(job)
    report = report_of(job)
    assert report["files"] < 1024 and "Too many open files" in report["error"]


def test_results_past_their_quota_fail_the_job_saying_so(make_user, settings):
    settings.DMARKET_JOB_DISK_QUOTA_MB = 5
    job = finish(limits_job(make_user("alice"), "disk", "8"))

    assert job.status == Job.FAILED
    assert job.status_reason == "its results and log passed their quota of 5 MB"


def test_a_single_file_cannot_grow_past_the_quota(make_user, settings):
    settings.DMARKET_JOB_DISK_QUOTA_MB = 5
    job = finish(limits_job(make_user("alice"), "bigfile", "8"))

    assert job.status == Job.SUCCEEDED, read_log(job)
    report = report_of(job)
    assert report["error"] == "[Errno 27] File too large"
    assert report["size"] == 5 * 1024 * 1024


def test_a_job_past_its_max_runtime_is_stopped_as_failed(make_user, settings):
    settings.DMARKET_CANCEL_GRACE = 3
    job = finish(limits_job(make_user("alice"), "sleep", "120", max_runtime=5))

    assert job.status == Job.FAILED
    assert job.status_reason == "the job ran past its max_runtime of 5 s"
    assert (job.finished_at - job.started_at).total_seconds() < 30
