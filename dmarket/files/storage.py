"""Where the file store's bytes live: a directory of this server (the default) or any
S3-compatible object store (doc/files.md). Only bytes: names, versions, sizes and SHA-256 are
rows of the database, written after the bytes they name and deleted before them."""

import hashlib
import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone as dt_timezone
from functools import cache
from pathlib import Path

from django.conf import settings
from dmarket_client.api import file_sha256
from rest_framework import status
from rest_framework.exceptions import APIException

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


class StorageUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The file store is unavailable."
    default_code = "storage_unavailable"


class ShortBody(Exception):
    """The stream ended before the length it announced."""

    def __init__(self, received, length):
        self.received, self.length = received, length
        super().__init__(f"the stream ended after {received} of {length} bytes")


class HashingReader:
    """Reads exactly `length` bytes of a stream, hashing them on the way; ShortBody if it ends
    before."""

    def __init__(self, stream, length):
        self.stream, self.length, self.received = stream, length, 0
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        """Exactly `size` bytes (fewer only at the announced end): boto3 takes a short read
        for the end of the body."""
        left = self.length - self.received
        size = left if size is None or size < 0 else min(size, left)
        parts = []
        while size > 0:
            try:
                chunk = self.stream.read(min(size, CHUNK))
            except OSError:
                chunk = b""
            if not chunk:
                raise ShortBody(self.received, self.length)
            self.digest.update(chunk)
            self.received += len(chunk)
            size -= len(chunk)
            parts.append(chunk)
        return b"".join(parts)


def new_key(kind):
    blob = uuid.uuid4().hex
    return f"{kind}/{blob[:2]}/{blob}"


@contextmanager
def store_errors(what):
    """boto3's errors as StorageUnavailable, saying what could not be done."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            # A row names these bytes: the store lost every copy of them.
            raise StorageUnavailable(f"The file store could not {what}: it has no copy of it "
                                     "left.") from None
        raise StorageUnavailable(f"The file store could not {what}: {code or e}; nothing was "
                                 "changed. Try again later.") from None
    except (BotoCoreError, Boto3Error) as e:
        # Boto3Error: what upload_file and download_file make of the store's errors.
        raise StorageUnavailable(f"The file store could not {what}: {e}; nothing was "
                                 "changed. Try again later.") from None


class LocalBlobs:
    """Blobs as files under DMARKET_FILES_DIR: written to tmp/ and renamed into place."""

    kind = "local"

    def __init__(self, root):
        self.root = Path(root)

    def path(self, key):
        return self.root / key

    def put_stream(self, key, reader):
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as f:
                while chunk := reader.read(CHUNK):
                    f.write(chunk)
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key, source):
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)

    def open(self, key):
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            # A row names these bytes: the disk lost them (restored without them?).
            raise StorageUnavailable("The file store could not read the file: it has no copy "
                                     "of it left.") from None

    def delete(self, key, quiet=False):
        self.path(key).unlink(missing_ok=True)

    def local_path(self, key, sha256=None):
        return self.path(key)

    def listing(self, prefix):
        """(key, modified datetime) of every blob whose key starts with prefix."""
        root = self.root / prefix
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    mtime = path.lstat().st_mtime
                except OSError:
                    continue
                yield (path.relative_to(self.root).as_posix(),
                       datetime.fromtimestamp(mtime, tz=dt_timezone.utc))

    def abort_uploads(self, before):
        """Remove uploads under way (tmp/*.part) begun before `before`; returns how many."""
        return sum(1 for key, modified in self.listing("tmp/")
                   if modified < before and self.path(key).unlink(missing_ok=True) is None)

    def url(self, key):
        return None

    def where(self, key):
        return {"storage": "local", "servers": [
            {"server": "the central server's disk", "volumes": [], "chunks": 1, "alive": True}]}


class S3Blobs:
    """Blobs as objects of one bucket of an S3-compatible store, through boto3."""

    kind = "s3"

    def __init__(self, endpoint, public_endpoint, bucket, access_key, secret_key, region,
                 cache_dir, write_timeout):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        def config(read_timeout, attempts):
            return Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          connect_timeout=5, read_timeout=read_timeout,
                          retries={"total_max_attempts": attempts, "mode": "standard"})

        options = {"aws_access_key_id": access_key or None,
                   "aws_secret_access_key": secret_key or None, "region_name": region}
        self.client = boto3.client("s3", endpoint_url=endpoint or None,
                                   config=config(60, 2), **options)
        # Writes are tried once, and a store that cannot place the copies answers within the
        # timeout (SeaweedFS with too few volume servers waits 30 s a try): the uploader hears
        # of it soon, and retries are the uploader's.
        self.writer = boto3.client("s3", endpoint_url=endpoint or None,
                                   config=config(write_timeout, 1), **options)
        self.signer = (boto3.client("s3", endpoint_url=public_endpoint, config=config(60, 2),
                                    **options)
                       if public_endpoint and public_endpoint != endpoint else self.client)
        self.bucket, self.endpoint, self.cache_dir = bucket, endpoint, Path(cache_dir)
        # Parts of 8 MB, two at a time and two in memory (s3transfer buffers ten of a stream
        # by default): an upload holds about 35 MB whatever its size.
        self.transfer = TransferConfig(multipart_threshold=8 * CHUNK,
                                       multipart_chunksize=8 * CHUNK, max_concurrency=2,
                                       use_threads=True)
        self.transfer.max_in_memory_upload_chunks = 2

    def _call(self, what, fn, *args, **kwargs):
        with store_errors(what):
            return fn(*args, **kwargs)

    def put_stream(self, key, reader):
        try:
            self._call("store the upload", self.writer.upload_fileobj, reader, self.bucket,
                       key, Config=self.transfer)
        except BaseException:
            # An upload cut short: a multipart upload is aborted by boto3; a single PUT that
            # raced ahead is removed.
            self.delete(key, quiet=True)
            raise

    def put_file(self, key, source):
        self._call("store a file", self.writer.upload_file, str(source), self.bucket, key,
                   Config=self.transfer)

    def open(self, key):
        return self._call("read the file", self.client.get_object, Bucket=self.bucket,
                          Key=key)["Body"]

    def delete(self, key, quiet=False):
        (self.cache_dir / key).unlink(missing_ok=True)
        try:
            self._call("delete the file", self.client.delete_object, Bucket=self.bucket,
                       Key=key)
        except StorageUnavailable as e:
            if not quiet:
                raise
            log.warning("blob %s left in the store: %s", key, e)

    def local_path(self, key, sha256=None):
        """A copy on this host for what needs a path (environments, working directories,
        inference models), kept in a cache: blobs never change once written."""
        target = self.cache_dir / key
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
        try:
            self._call("read the file", self.client.download_file, self.bucket, key,
                       str(tmp), Config=self.transfer)
            if sha256 is not None and file_sha256(tmp) != sha256:
                raise StorageUnavailable(f"The file store returned other bytes for {key} "
                                         "than were stored (SHA-256 differs).")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def listing(self, prefix):
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        with store_errors("list the files"):
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"]

    def abort_uploads(self, before):
        """Abort the multipart uploads begun before `before` (a server that died mid-upload
        leaves its parts); returns how many."""
        found = self._call("list the uploads under way", self.client.list_multipart_uploads,
                           Bucket=self.bucket)
        aborted = 0
        for upload in found.get("Uploads", []):
            if upload["Initiated"] < before:
                self._call("abort an upload", self.client.abort_multipart_upload,
                           Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
        return aborted

    def url(self, key):
        # No response header of the request's making: Spark names its copy after the URL it
        # was given (the server's, which ends in the file's name).
        return self.signer.generate_presigned_url(
            "get_object", ExpiresIn=settings.DMARKET_S3_URL_SECONDS,
            Params={"Bucket": self.bucket, "Key": key})

    def where(self, key):
        if not (settings.DMARKET_SEAWEEDFS_FILER and settings.DMARKET_SEAWEEDFS_MASTER):
            # Plain S3 says nothing of where it keeps an object.
            return {"storage": "s3", "servers": [
                {"server": self.endpoint, "volumes": [], "chunks": None, "alive": True}]}
        from .seaweed import LookupFailed, replicas

        try:
            servers = replicas(settings.DMARKET_SEAWEEDFS_FILER,
                               settings.DMARKET_SEAWEEDFS_MASTER, self.bucket, key)
        except LookupFailed as e:
            raise StorageUnavailable(f"SeaweedFS could not say where the file is: {e}") \
                from None
        return {"storage": "seaweedfs", "servers": servers}


@cache
def _blobs(kind, *options):
    if kind == "local":
        return LocalBlobs(*options)
    return S3Blobs(*options)


def blobs():
    """The configured backend (one per configuration: tests change the settings)."""
    if settings.DMARKET_STORAGE == "s3":
        return _blobs("s3", settings.DMARKET_S3_ENDPOINT, settings.DMARKET_S3_PUBLIC_ENDPOINT,
                      settings.DMARKET_S3_BUCKET, settings.DMARKET_S3_ACCESS_KEY,
                      settings.DMARKET_S3_SECRET_KEY, settings.DMARKET_S3_REGION,
                      str(settings.DMARKET_FILES_CACHE_DIR
                          or Path(settings.DMARKET_FILES_DIR) / "cache"),
                      settings.DMARKET_S3_WRITE_TIMEOUT)
    return _blobs("local", str(settings.DMARKET_FILES_DIR))


def blob_redirect(key):
    """A redirect to a URL of the store that opens this one object for a few minutes (give
    it only for a valid credential), so that its bytes do not cross this server; None for a
    store without such URLs (the local one)."""
    from django.http import HttpResponseRedirect

    url = blobs().url(key)
    return HttpResponseRedirect(url) if url else None


def blob_response(key, size, filename, sha256=None):
    """A download of a blob, streamed from the store a chunk at a time."""
    from django.http import FileResponse

    response = FileResponse(blobs().open(key), as_attachment=True, filename=filename)
    # A store's body has no fileno, so gunicorn cannot sendfile it and iterates it in blocks
    # of block_size: Django's 4 KB made downloads from SeaweedFS 4 times slower than 256 KB.
    response.block_size = 256 * 1024
    response["Content-Length"] = str(size)
    if sha256:
        response["X-Content-SHA256"] = sha256
    return response


def blob_replicas(key):
    """{storage, copies, servers}: where the blob's copies are, as the store tells."""
    found = blobs().where(key)
    servers = found["servers"]
    chunks = max((s["chunks"] or 0 for s in servers), default=0)
    # A server holds a whole copy when it holds every chunk (SeaweedFS puts all replicas of a
    # chunk's volume on the same servers, so a copy is whole or partial per server).
    copies = sum(1 for s in servers if s["alive"] and (s["chunks"] is None
                                                       or s["chunks"] == chunks))
    return {"storage": found["storage"], "copies": copies, "servers": servers}
