"""Jobs of dmarket:// files with the store on SeaweedFS (four copies of every blob on four
volume servers), on a real Spark cluster: executors fetch their inputs from the store's S3
gateway (the server only exchanges the job's credential for a short signed URL), results are
copied into the store when the job ends, and with three of the four volume servers killed every
file and result still downloads intact and a job naming them succeeds."""

import os
import shutil

import pytest

from dmarket.conftest import client_for, use_s3_store
from dmarket.files.models import FileVersion, ResultFile
from dmarket.files.tests.util import sha, upload, uploaded
from dmarket.jobs.models import Job

from .test_files import files_job, store_the_app
from .util import drive, read_log, result, settled, share_workers

pytestmark = pytest.mark.django_db(transaction=True)


def everything_downloads_intact(user, jobs):
    """Every file version and every result file of `jobs`, through the API, with its SHA-256."""
    client = client_for(user)
    for version in FileVersion.objects.filter(file__user=user):
        response = client.get(f"/api/files/{version.file.name}?version={version.version}")
        assert response.status_code == 200, response.content
        assert sha(b"".join(response.streaming_content)) == version.sha256
    for job in jobs:
        for record in ResultFile.objects.filter(job=job):
            response = client.get(f"/api/jobs/{job.pk}/results/{record.path}")
            assert response.status_code == 200, response.content
            assert sha(b"".join(response.streaming_content)) == record.sha256


def test_with_three_of_four_volume_servers_killed_files_and_results_survive_and_jobs_run(
        cluster, make_user, live_server, settings, own_seaweed):
    settings.DMARKET_PUBLIC_URL = live_server.url
    store = use_s3_store(settings, own_seaweed)
    share_workers(cluster, make_user)
    alice = make_user("alice")
    store_the_app(alice)

    job = drive(files_job(alice), settled)

    assert job.status == Job.SUCCEEDED, read_log(job)
    assert {row["host"] for row in result(job)["rows"]} == {"127.0.0.2", "127.0.0.3"}
    # The results were copied into the store, and outlive the launcher host's directory.
    assert job.result_files.filter(path="model.zip").exists()
    shutil.rmtree(job.output_dir)
    assert all(key.startswith(("blobs/", "results/")) for key in store_keys(store))

    for i in range(3):
        own_seaweed.kill_volume(i)

    everything_downloads_intact(alice, [job])
    model = f"dmarket://jobs/{job.pk}/results/model.zip#model"
    second = drive(files_job(alice, archives=["dmarket://data/values.zip#data", model]),
                   settled)
    assert second.status == Job.SUCCEEDED, read_log(second)
    assert [row["model"] for row in result(second)["rows"]] == [
        f"trained by {job.spark_app_id}"] * 2
    # An upload while only one server of four is up cannot have its four copies: refused with
    # the store's reason, nothing recorded.
    before = FileVersion.objects.count()
    refused = upload(alice, "late.bin", b"x" * 1000)
    assert refused.status_code == 503, refused.content
    assert refused.json()["detail"].startswith("The file store could not store the upload")
    assert FileVersion.objects.count() == before


def store_keys(store):
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's network rules need root (nftables)")
def test_a_hostile_job_reaches_the_store_only_through_its_signed_urls(
        cluster, make_user, live_server, settings, seaweed):
    from urllib.parse import quote

    from .test_sandbox import SURVIVOR, address, hostile_job, report_of, run, survivors

    settings.DMARKET_PUBLIC_URL = live_server.url
    store = use_s3_store(settings, seaweed)
    share_workers(cluster, make_user)
    bob, mallory = make_user("bob"), make_user("mallory")
    secret = uploaded(bob, "private/model.h5", b"bob's model")
    internal = [a for a in seaweed.env["DMARKET_STORAGE_INTERNAL"].split(",") if a]
    gateway = seaweed.env["DMARKET_S3_ENDPOINT"]
    targets = {"read": [], "list": [], "write": [], "signal": [], "survivor": SURVIVOR,
               # The filer, the master and a volume server answer anyone: never reached.
               "connect": [address(seaweed.env["DMARKET_SEAWEEDFS_FILER"]),
                           address(seaweed.env["DMARKET_SEAWEEDFS_MASTER"]),
                           seaweed.volume_server(0), address(gateway)],
               # The gateway is reached (executors fetch from it) but wants a signature.
               "http": [f"{gateway}/{store.bucket}/{quote(secret.blob)}",
                        f"{gateway}/{store.bucket}?list-type=2"]}
    assert set(targets["connect"][:3]) <= set(internal)

    job = hostile_job(mallory, targets)
    run(job, until=lambda: job.settled_at is not None)

    assert job.status == Job.SUCCEEDED, read_log(job)
    report = report_of(job)
    connect = report["connect"]
    assert [connect[a]["ok"] for a in targets["connect"]] == [False, False, False, True], connect
    assert all(not r["ok"] and "403" in r["error"] for r in report["http"].values()), \
        report["http"]
    assert survivors() == []
