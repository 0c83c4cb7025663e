"""A finished job's result files recorded and copied into the store (from the launcher's
loop), so that they outlive the launcher's host. Above the file store (dmarket.files), which
imports nothing of jobs."""

import logging
import os
import stat
import time

from django.conf import settings
from django.db import DataError, DatabaseError, IntegrityError, transaction
from django.utils import timezone

from dmarket.files.models import ResultFile
from dmarket.files.services import MB, modified_at, output_files
from dmarket.files.storage import HashingReader, blobs, new_key

from .models import Job

CHUNK = 1024 * 1024
log = logging.getLogger(__name__)


# A path's UTF-8 bytes in a row: PostgreSQL's index on (job, path) takes at most 2,704 bytes.
RESULT_PATH_BYTES = 2000


def result_store(job, path, info, store):
    """Record one result file, and copy its bytes into a store that is not this disk.
    Returns whether it was recorded; raises StorageUnavailable (the pass is retried)."""
    # The job wrote these; its processes have ended, but a link or a FIFO put in a file's
    # place must still not be followed or block the launcher.
    fd = os.open(job.output_dir / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        opened = os.fstat(f.fileno())
        if not stat.S_ISREG(opened.st_mode):
            return False
        size = opened.st_size
        reader = HashingReader(f, size)
        key = ""
        if store.kind == "local":
            while reader.read(CHUNK):
                pass
        else:
            # Hashed on its way to the store: what is recorded is what was sent.
            key = new_key("results")
            store.put_stream(key, reader)
    try:
        with transaction.atomic():
            ResultFile.objects.create(job=job, path=path, size=size,
                                      sha256=reader.digest.hexdigest(), blob=key,
                                      modified_at=modified_at(info))
    except DatabaseError:
        # Recorded by a pass that ran at once (the copy is then named by nothing), or a row
        # the database refuses: either way this copy is not kept.
        if key:
            store.delete(key, quiet=True)
        if ResultFile.objects.filter(job=job, path=path).exists():
            return False
        raise
    return True


def result_fits(job, path, info, totals):
    """Whether a file of the job's output may be a result: a name that can be a row, and
    within the job's quotas (counted in bytes, not blocks: a sparse file of 2 GB is 2 GB
    to copy)."""
    try:
        fits = len(path.encode()) <= RESULT_PATH_BYTES
    except UnicodeEncodeError:
        fits = False
    if not fits:
        log.warning("job %s: result %r not recorded: its name cannot be stored", job.pk, path)
        return False
    totals["files"] += 1
    totals["bytes"] += info.st_size
    if (totals["files"] > settings.DMARKET_JOB_MAX_FILES
            or totals["bytes"] > settings.DMARKET_JOB_DISK_QUOTA_MB * MB):
        log.warning("job %s: result %r not recorded: past the job's quota of %s files or "
                    "%s MB", job.pk, path, settings.DMARKET_JOB_MAX_FILES,
                    settings.DMARKET_JOB_DISK_QUOTA_MB)
        return False
    return True


def job_results_store(job, deadline=None):
    """Record a finished job's result files (path, size, SHA-256) and copy their bytes into
    the store, so that they outlive the launcher's host; once per job. A file that cannot be
    read or recorded is logged and left out; a pass that fails on the store, or runs past
    `deadline` (time.monotonic(); a job of many files must not hold up the launcher), is
    taken up by the next, skipping what was recorded. Returns how many files were recorded."""
    if not job.is_finished or job.results_stored_at is not None:
        return 0
    if deadline is None:
        deadline = time.monotonic() + settings.DMARKET_RESULTS_PASS_SECONDS
    store = blobs()
    done = set(job.result_files.values_list("path", flat=True))
    count, totals = 0, {"files": 0, "bytes": 0}
    for path, info in output_files(job.output_dir):
        if not result_fits(job, path, info, totals) or path in done:
            continue
        if time.monotonic() > deadline:
            return count
        try:
            count += result_store(job, path, info, store)
        except (OSError, IntegrityError, DataError) as e:
            # Unreadable, or a row the database refuses: this file, not the pass.
            log.warning("job %s: result %r not recorded: %s", job.pk, path, e)
    Job.objects.filter(pk=job.pk, results_stored_at=None).update(
        results_stored_at=timezone.now())
    job.refresh_from_db(fields=["results_stored_at"])
    return count
