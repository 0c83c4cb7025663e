"""The file store's rules: uploads, visibility, deletion, and the files jobs name."""

import hmac
import logging
import os
import re
import stat
from dataclasses import replace
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import OuterRef, Subquery, Sum
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied

from dmarket.common.api import Conflict
from dmarket.credits.models import run_owner, runs_unfinished

from .models import FileVersion, JobInput, ResultFile, StoredFile
from .storage import HashingReader, ShortBody, StorageUnavailable, blobs, new_key

log = logging.getLogger(__name__)
MB = 1024 * 1024


class QuotaExceeded(Exception):
    def __init__(self, usage, quota, size):
        self.usage, self.quota, self.size = usage, quota, size
        super().__init__(
            f"Storing {size} more bytes would bring your files to {usage + size} bytes, over "
            f"your quota of {quota} bytes ({quota // MB} MB; you use {usage} bytes). Delete "
            "old versions with `dmarket files rm NAME@VERSION`.")


class UploadFailed(Exception):
    """The body is not what the request announced; `field` names the header it contradicts."""

    def __init__(self, field, message):
        self.field = field
        super().__init__(message)


def storage_usage(user):
    return FileVersion.objects.filter(file__user=user).aggregate(s=Sum("size"))["s"] or 0


def storage_quota():
    return settings.DMARKET_STORAGE_QUOTA_MB * MB


def storage_summary(user):
    versions = FileVersion.objects.filter(file__user=user)
    used = storage_usage(user)
    return {"used": used, "quota": storage_quota(),
            "available": max(0, storage_quota() - used),
            "files": versions.values("file").distinct().count(), "versions": versions.count()}


def files_quota_check(user, size):
    usage = storage_usage(user)
    if usage + size > storage_quota():
        raise QuotaExceeded(usage, storage_quota(), size)


def storage_lock(user):
    """Serialises one user's uploads: the quota and version numbers are checked and taken
    under it, so concurrent uploads cannot both fit the same space or take the same number."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def file_store(user, name, stream, length, sha256=None, public=None):
    """Store the stream's `length` bytes as a new version of the user's file NAME.

    Nothing is kept unless every byte arrived and, when `sha256` is given, they hash to it.
    The bytes are stored first, hashed on the way, and the version's row is written after
    them: a row never names missing bytes, and bytes without a row are removed (or, if the
    server dies in between, named by nothing). Raises QuotaExceeded, UploadFailed or
    StorageUnavailable.
    """
    files_quota_check(user, length)
    store = blobs()
    key = new_key("blobs")
    reader = HashingReader(stream, length)
    try:
        store.put_stream(key, reader)
    except ShortBody as e:
        raise UploadFailed("Content-Length", f"The upload ended after {e.received} of the "
                           f"{length} bytes announced in Content-Length; nothing was "
                           "stored.") from None
    digest = reader.digest.hexdigest()
    try:
        if reader.received != length:
            # The store stopped reading early: what it kept is not the whole body.
            raise StorageUnavailable(f"The file store took {reader.received} of the {length} "
                                     "bytes; nothing was stored.")
        if sha256 is not None and digest != sha256:
            raise UploadFailed("X-Content-SHA256", f"The upload's SHA-256 is {digest}, not "
                               f"{sha256} as announced; nothing was stored.")
        with transaction.atomic():
            storage_lock(user)
            # Again under the lock: uploads that were running at once may have filled it.
            files_quota_check(user, length)
            stored, _ = StoredFile.objects.get_or_create(user=user, name=name)
            number = stored.next_version
            stored.next_version += 1
            changed = ["next_version"]
            if public is not None:
                stored.public = public
                changed.append("public")
            stored.save(update_fields=changed)
            version = FileVersion.objects.create(file=stored, version=number, size=length,
                                                 sha256=digest, blob=key)
    except BaseException:
        store.delete(key, quiet=True)
        raise
    return version


def file_for(user, ref):
    """The StoredFile `ref` names if the user may read it: their own, another's public one,
    or anyone's for an operator. NotFound otherwise, saying the same whether or not a private
    file of that name exists."""
    owner = ref.owner or user.username
    qs = StoredFile.objects.select_related("user").filter(user__username=owner, name=ref.name)
    if owner != user.username and not user.is_staff:
        qs = qs.filter(public=True)
    stored = qs.first()
    if stored is None or not stored.versions.exists():
        raise NotFound(f"No such file: {ref.uri()}")
    return stored


# The longest name filter a listing takes (?pattern=): PostgreSQL compiles it, and a long
# one (thousands of characters) takes it seconds or fails as "too complex".
MAX_PATTERN = 255


def glob_regex(pattern):
    """A shell-style pattern (* and ?, matching '/' too) as an anchored regular expression
    that PostgreSQL and SQLite evaluate alike. A run of stars is one star (the same match,
    without a regular expression that PostgreSQL takes long to compile)."""
    return "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                         for c in re.sub(r"\*+", "*", pattern)) + "$"


def files_latest(user, owner=None, pattern=None):
    """The latest version of each file of `owner` (the user by default) that the user may
    read, by name; only names matching `pattern` (* and ?) if one is given."""
    owner = owner or user.username
    qs = FileVersion.objects.select_related("file__user").filter(file__user__username=owner)
    if owner != user.username and not user.is_staff:
        qs = qs.filter(file__public=True)
    latest = (FileVersion.objects.filter(file=OuterRef("file")).order_by("-version")
              .values("version")[:1])
    qs = qs.filter(version=Subquery(latest))
    if pattern:
        qs = qs.filter(file__name__regex=glob_regex(pattern))
    return qs.order_by("file__name")


def version_of(stored, ref, lock=False):
    """The version `ref` asks for (the latest when it gives none); NotFound if it is gone."""
    versions = stored.versions.order_by("-version")
    if lock:
        versions = versions.select_for_update()
    if ref.version is None:
        found = versions.first()
    else:
        found = versions.filter(version=ref.version).first()
    if found is None:
        raise NotFound(f"No version {ref.version} of {replace(ref, version=None).uri()}.")
    return found


def file_publish(stored, public):
    stored.public = public
    stored.save(update_fields=["public"])
    return stored


def file_delete(user, ref):
    """Delete one version of the user's own file, or all of them. Returns the numbers deleted.

    Raises Conflict when an unfinished job (anyone's) pinned one of them at submission."""
    with transaction.atomic():
        stored = StoredFile.objects.select_for_update().filter(user=user, name=ref.name).first()
        if stored is None:
            raise NotFound(f"No such file: {ref.uri()}")
        # Locked: a submit pinning one of them waits, then finds it gone (or we find its pin).
        versions = list(stored.versions.select_for_update().order_by("version") if
                        ref.version is None else
                        stored.versions.select_for_update().filter(version=ref.version))
        if not versions:
            raise NotFound(f"No such file: {ref.uri()}")
        # Through runs: files imports nothing of the job apps above it.
        busy = (JobInput.objects.filter(runs_unfinished("run__"), version__in=versions)
                .select_related("run", "version").order_by("run_id").first())
        if busy is not None:
            raise Conflict(f"{ref.uri(version=busy.version.version)} is in use by "
                           f"{busy.run.label} ({run_owner(busy.run).status}); delete it once "
                           "that job has finished.")
        keys = [v.blob for v in versions]
        FileVersion.objects.filter(pk__in=[v.pk for v in versions]).delete()
        # After the rows: a store that fails here leaves bytes that nothing names.
        transaction.on_commit(lambda: [blobs().delete(k, quiet=True) for k in keys])
    return [v.version for v in versions]


# --- Files that jobs name -------------------------------------------------------------------

def result_record(job, path):
    """The recorded ResultFile at `path` of a job whose results were stored, else None."""
    if job.results_stored_at is None:
        return None
    return ResultFile.objects.filter(job=job, path=path).first()


def result_file(job, path):
    """A path on this host holding the job's result file at the relative `path`, or None;
    nothing outside its output. Once the results are stored, only what was recorded (a copy
    from the store when the output directory is on another host, or gone)."""
    if job.results_stored_at is not None:
        found = result_record(job, path)
        if found is None:
            return None
        if found.blob:
            return blobs().local_path(found.blob, found.sha256)
    root = job.output_dir.resolve()
    try:
        target = (root / path).resolve()
        # resolve() follows links and "..": whatever it ends at must still be inside root.
        found = target.is_relative_to(root) and target != root and target.is_file()
    except (OSError, ValueError, RuntimeError):
        # A NUL in the path (ValueError), a name too long for the file system, a loop of
        # links (RuntimeError).
        found = False
    return target if found else None


def result_exists(job, path):
    """Whether the job has the result file `path`, without fetching it from the store."""
    if job.results_stored_at is not None:
        return result_record(job, path) is not None
    return result_file(job, path) is not None


def output_files(root):
    """[(relative path, os.stat_result)] of the regular files under root, links not
    followed, sorted."""
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirs, filenames in os.walk(root):
        dirs.sort()
        for name in filenames:
            path = Path(dirpath) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((path.relative_to(root).as_posix(), info))
    return sorted(found, key=lambda item: item[0])


def modified_at(info):
    """A file's modification time; a job may set any, so one Python cannot hold is now."""
    try:
        return datetime.fromtimestamp(info.st_mtime, tz=dt_timezone.utc)
    except (ValueError, OverflowError, OSError):
        return timezone.now()


def job_results(job):
    """[{path, size, modified_at, sha256}] of the job's result files: as recorded once they
    are stored, else what its output directory holds now (sha256 None)."""
    if job.results_stored_at is not None:
        return [{"path": r.path, "size": r.size, "modified_at": r.modified_at,
                 "sha256": r.sha256} for r in job.result_files.order_by("path")]
    return [{"path": path, "size": info.st_size, "sha256": None,
             "modified_at": modified_at(info)}
            for path, info in output_files(job.output_dir)]


def job_input_token_valid(job, token):
    """The job's credential opens only its own files; a job without any has none."""
    return bool(job.files_token) and hmac.compare_digest(job.files_token, token)


def job_credential_check(job, token):
    """What a job's credential in a URL opens: only that job's files (one answer for a wrong
    credential and a job that does not exist), only while it is unfinished. Raises
    PermissionDenied."""
    if job is None or not job_input_token_valid(job, token):
        raise PermissionDenied("This is not a valid credential for this job's files.")
    if job.status not in job.UNFINISHED:
        raise PermissionDenied(f"This credential expired when job {job.pk} finished "
                               f"({job.status}).")


def job_input_source(job, input_id):
    """Where the job's pinned input `input_id` is: (blob key, size, None) when its bytes are
    in the store, ("", size, local path) for a result still in its job's output directory;
    None if it is not the job's or is gone."""
    found = (JobInput.objects.select_related("version", "result_job")
             .filter(run_id=job.run_id, pk=input_id).first())
    if found is None:
        return None
    if found.version is not None:
        return found.version.blob, found.version.size, None
    if found.result_job is not None:
        record = result_record(found.result_job, found.result_path)
        if record is not None and record.blob:
            return record.blob, record.size, None
        path = result_file(found.result_job, found.result_path)
        try:
            return ("", path.stat().st_size, path) if path is not None else None
        except OSError:
            return None
    return None


def job_input_file(job, input_id):
    """The path of the pinned input `input_id` of the job (of either kind), or None."""
    found = (JobInput.objects.select_related("version", "result_job")
             .filter(run_id=job.run_id, pk=input_id).first())
    if found is None:
        return None
    if found.version is not None:
        return found.version.local_path()
    if found.result_job is not None:
        return result_file(found.result_job, found.result_path)
    return None


# --- Bytes that nothing names -------------------------------------------------------------------

SWEPT_PREFIXES = ("blobs/", "results/")
# Bytes that rows of an app above files name (envs: built environments, under "envs/"): each
# such app adds its prefix and a function giving which of some keys its rows name, from its
# AppConfig.ready() (storage_users_add), as files imports nothing of the apps above it. A
# prefix that no app added is not swept at all: a missed registration keeps bytes, it never
# deletes bytes in use.
_storage_users = {}


def storage_users_add(prefix, named):
    """Sweep `prefix` too, keeping the keys that `named(keys)` (a set) says rows name."""
    _storage_users[prefix] = named


def storage_named(keys):
    """Which of the keys a row names (a version, a result file, a built environment)."""
    keys = list(keys)
    named = (set(FileVersion.objects.filter(blob__in=keys).values_list("blob", flat=True))
             | set(ResultFile.objects.filter(blob__in=keys).values_list("blob", flat=True)))
    for users in _storage_users.values():
        named |= users(keys)
    return named


def storage_sweep(older_than, dry_run=False, batch=1000):
    """Delete from the store the bytes that no row names and that are older than the
    timedelta `older_than` (younger ones may be an upload whose row is being written), and
    abort uploads under way begun before then: what a server killed between the bytes and the
    row, or a failed deletion, left. Returns {"checked", "deleted", "aborted"}."""
    store = blobs()
    cutoff = timezone.now() - older_than
    counts = {"checked": 0, "deleted": 0, "aborted": 0}
    for prefix in SWEPT_PREFIXES + tuple(_storage_users):
        old = []
        for key, modified in store.listing(prefix):
            counts["checked"] += 1
            if modified < cutoff:
                old.append(key)
            if len(old) >= batch:
                counts["deleted"] += storage_sweep_keys(store, old, dry_run)
                old = []
        counts["deleted"] += storage_sweep_keys(store, old, dry_run)
    if not dry_run:
        counts["aborted"] = store.abort_uploads(cutoff)
    return counts


def storage_sweep_keys(store, keys, dry_run):
    named = storage_named(keys)
    unnamed = [k for k in keys if k not in named]
    for key in unnamed:
        log.info("storage sweep: %s%s", "would delete " if dry_run else "deleting ", key)
        if not dry_run:
            store.delete(key)
    return len(unnamed)
