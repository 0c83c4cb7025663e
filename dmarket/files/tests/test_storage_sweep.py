"""manage.py storage_sweep: bytes that no row names, older than the cutoff, are deleted from
the store (the local directory, and SeaweedFS through its S3 gateway); named ones, young ones
and the dry run's are left; uploads left under way are aborted."""

import io
import json
import os
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from dmarket.files.storage import new_key

from .util import uploaded

pytestmark = pytest.mark.django_db


def sweep(*args):
    out = io.StringIO()
    call_command("storage_sweep", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def age(path, hours):
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_local_bytes_nothing_names_are_deleted_once_old(alice, settings):
    version = uploaded(alice, "kept.bin", b"kept")
    orphan, young = new_key("blobs"), new_key("results")
    for key in (orphan, young):
        path = settings.DMARKET_FILES_DIR / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"orphan")
    age(settings.DMARKET_FILES_DIR / orphan, 48)
    age(settings.DMARKET_FILES_DIR / version.blob, 48)
    (settings.DMARKET_FILES_DIR / "tmp").mkdir(exist_ok=True)
    part = settings.DMARKET_FILES_DIR / "tmp" / "x.part"
    part.write_bytes(b"half")
    age(part, 48)

    assert sweep("--dry-run") == {"checked": 3, "deleted": 1, "aborted": 0}
    assert (settings.DMARKET_FILES_DIR / orphan).exists()
    assert sweep() == {"checked": 3, "deleted": 1, "aborted": 1}

    assert not (settings.DMARKET_FILES_DIR / orphan).exists() and not part.exists()
    assert (settings.DMARKET_FILES_DIR / young).exists()
    assert version.local_path().read_bytes() == b"kept"


def test_a_cutoff_under_an_hour_is_refused(db):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("storage_sweep", "--older-than-hours", "0.5")


def test_object_store_orphans_and_abandoned_uploads_go(alice, s3_store, monkeypatch):
    version = uploaded(alice, "kept.bin", b"kept")
    orphan = new_key("blobs")
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=orphan, Body=b"orphan")
    started = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket,
                                                      Key=new_key("blobs"))
    # Everything in the bucket is seconds old: the sweep is run as if a day had passed.
    import dmarket.files.services as services

    real_now = services.timezone.now
    monkeypatch.setattr(services.timezone, "now",
                        lambda: real_now() + timedelta(hours=25))

    counts = sweep()

    keys = [o["Key"] for o in s3_store.client.list_objects_v2(
        Bucket=s3_store.bucket, Prefix="blobs/").get("Contents", [])]
    assert orphan not in keys and version.blob in keys
    assert counts["deleted"] >= 1 and counts["aborted"] >= 1
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", [])
    assert started["UploadId"] not in [u["UploadId"] for u in uploads]
