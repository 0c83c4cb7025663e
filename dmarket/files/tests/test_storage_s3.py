"""The file store on an S3-compatible store: a real SeaweedFS cluster (scripts/start_storage.sh:
a master, four volume servers, a filer with its S3 gateway) behind the same API. The bytes are
in the bucket, the rows in PostgreSQL, and nothing is half-written either way."""

import io
import os
import socket
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone

from dmarket.conftest import client_for
from dmarket.files.models import FileVersion, ResultFile
from dmarket.files.services import UploadFailed, file_store
from dmarket.files.storage import StorageUnavailable, blobs
from dmarket.jobs.results import job_results_store
from dmarket.jobs.tests.util import submitted

from .util import sha, upload, uploaded


def bucket_keys(store, prefix=""):
    pages = store.client.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def object_bytes(store, key):
    return store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()


def downloaded(response):
    return b"".join(response.streaming_content)


def test_an_upload_is_stored_in_the_bucket_and_downloads_from_it(alice, s3_store):
    data = os.urandom(3 * 1024 * 1024 + 5)

    version = uploaded(alice, "data/train.bin", data)
    response = client_for(alice).get("/api/files/data/train.bin")

    assert version.blob in bucket_keys(s3_store, "blobs/")
    assert object_bytes(s3_store, version.blob) == data
    assert response.status_code == 200
    assert response["X-Content-SHA256"] == sha(data) == version.sha256
    assert response["Content-Length"] == str(len(data))
    assert downloaded(response) == data


def test_a_multipart_upload_cut_short_leaves_no_object_no_part_and_no_row(alice, s3_store):
    before = bucket_keys(s3_store)
    # Past the 8 MB multipart threshold: parts are sent before the body ends.
    body = io.BytesIO(b"z" * (20 * 1024 * 1024))

    with pytest.raises(UploadFailed, match="ended after 20971520 of the 31457280 bytes"):
        file_store(alice, "big.bin", body, 30 * 1024 * 1024)

    assert bucket_keys(s3_store) == before
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []
    assert not FileVersion.objects.exists()


def test_bytes_that_do_not_match_their_sha256_leave_nothing(alice, s3_store):
    before = bucket_keys(s3_store)

    response = upload(alice, "a.py", b"print(1)\n", sha256="0" * 64)

    assert response.status_code == 400
    assert bucket_keys(s3_store) == before
    assert not FileVersion.objects.exists()


def test_deleting_a_version_deletes_its_object(alice, s3_store, django_capture_on_commit_callbacks):
    v1 = uploaded(alice, "a.py", b"1")
    v2 = uploaded(alice, "a.py", b"2")

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).delete("/api/files/a.py?version=1")

    assert response.status_code == 200
    keys = bucket_keys(s3_store, "blobs/")
    assert v1.blob not in keys and v2.blob in keys


def test_a_jobs_credential_is_exchanged_for_a_short_url_of_the_store(alice, s3_store,
                                                                       settings):
    data = b"print('from the store')\n"
    uploaded(alice, "app.py", data)
    job = submitted(alice, "dmarket://app.py")
    found = job.run.inputs.get()
    url = f"/api/jobs/{job.pk}/inputs/{found.pk}/{job.files_token}/app.py"

    response = client_for(None).get(url)

    assert response.status_code == 302
    signed = response["Location"]
    assert signed.startswith(settings.DMARKET_S3_PUBLIC_ENDPOINT + "/")
    assert f"X-Amz-Expires={settings.DMARKET_S3_URL_SECONDS}" in signed
    assert requests.get(signed, timeout=10).content == data
    # The signature opens that object alone: another key with it is refused by the store.
    blob = found.version.blob
    other = signed.replace(blob, blob[:-1] + ("1" if blob.endswith("0") else "0"))
    assert requests.get(other, timeout=10).status_code == 403
    # Once the job has ended, its credential buys no URL.
    job.status, job.finished_at = "SUCCEEDED", timezone.now()
    job.save(update_fields=["status", "finished_at"])
    assert client_for(None).get(url).status_code == 403


def test_results_are_copied_into_the_store_and_outlive_the_output_directory(alice, s3_store,
                                                                            entry_file):
    import shutil

    job = submitted(alice, entry_file)
    job.output_dir.mkdir(parents=True)
    data = os.urandom(100_000)
    (job.output_dir / "model.zip").write_bytes(data)
    job.status, job.finished_at = "SUCCEEDED", timezone.now()
    job.save(update_fields=["status", "finished_at"])

    assert job_results_store(job) == 1
    shutil.rmtree(job.output_dir)
    record = ResultFile.objects.get(job=job)
    listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/")
    response = client_for(alice).get(f"/api/jobs/{job.pk}/results/model.zip")

    assert record.blob in bucket_keys(s3_store, "results/")
    assert listing.json()["results"][0]["sha256"] == sha(data)
    assert response.status_code == 200
    assert response["X-Content-SHA256"] == sha(data)
    assert downloaded(response) == data


def test_a_result_named_by_a_later_job_is_fetched_from_the_store(alice, s3_store, entry_file):
    job = submitted(alice, entry_file)
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "model.zip").write_bytes(b"PK weights")
    job.status, job.finished_at = "SUCCEEDED", timezone.now()
    job.save(update_fields=["status", "finished_at"])
    job_results_store(job)

    second = submitted(alice, entry_file, archives=[f"dmarket://jobs/{job.pk}/results/model.zip"])
    found = second.run.inputs.get(result_job=job)
    response = client_for(None).get(
        f"/api/jobs/{second.pk}/inputs/{found.pk}/{second.files_token}/model.zip")

    assert response.status_code == 302
    assert requests.get(response["Location"], timeout=10).content == b"PK weights"


def test_the_api_says_which_servers_hold_the_copies(alice, s3_store, seaweed):
    uploaded(alice, "data.bin", os.urandom(1000))

    response = client_for(alice).get("/api/file-replicas/data.bin")

    body = response.json()
    assert response.status_code == 200
    assert (body["storage"], body["copies"], body["version"]) == ("seaweedfs", 4, 1)
    assert sorted(s["server"] for s in body["servers"]) == sorted(seaweed.volume_servers)
    assert all(s["alive"] for s in body["servers"])


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store_down(s3_store, settings):
    settings.DMARKET_S3_ENDPOINT = f"http://127.0.0.1:{closed_port()}"
    settings.DMARKET_SEAWEEDFS_FILER = settings.DMARKET_S3_ENDPOINT
    return blobs()


def test_with_the_store_down_an_upload_is_503_with_a_reason_and_writes_no_row(alice,
                                                                               store_down):
    response = upload(alice, "a.py", b"print(1)\n")

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("The file store could not store the upload: ")
    assert detail.endswith("; nothing was changed. Try again later.")
    assert urlsplit(store_down.endpoint).netloc in detail
    assert not FileVersion.objects.exists()


def test_with_the_store_down_downloads_and_lookups_are_503(alice, s3_store, settings):
    uploaded(alice, "a.py", b"print(1)\n")
    settings.DMARKET_S3_ENDPOINT = f"http://127.0.0.1:{closed_port()}"
    settings.DMARKET_SEAWEEDFS_FILER = settings.DMARKET_S3_ENDPOINT

    download = client_for(alice).get("/api/files/a.py")
    where = client_for(alice).get("/api/file-replicas/a.py")

    assert download.status_code == 503
    assert download.json()["detail"].startswith("The file store could not read the file: ")
    assert where.status_code == 503
    assert where.json()["detail"].startswith("SeaweedFS could not say where the file is: ")


def test_storing_results_with_the_store_down_raises_and_records_nothing(alice, entry_file,
                                                                        store_down):
    job = submitted(alice, entry_file)
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "out.txt").write_bytes(b"x")
    job.status, job.finished_at = "SUCCEEDED", timezone.now()
    job.save(update_fields=["status", "finished_at"])

    with pytest.raises(StorageUnavailable):
        job_results_store(job)

    job.refresh_from_db()
    assert job.results_stored_at is None
    assert not ResultFile.objects.exists()
