"""The launcher: claims queued jobs, runs each driver with spark-submit in client mode, follows
it to its end, and stops it on cancel.

Several launchers (one per host) may share the queue: a job is claimed by a conditional UPDATE
that only one of them can win. Drivers run in sessions of their own through
dmarket.cluster.wrapper, which writes the exit code to the job's directory, so they outlive a
launcher that dies and a restarted launcher picks up where it left off.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from dmarket.jobs.models import Job

from . import spark, wrapper
from .billing import job_settle

log = logging.getLogger(__name__)

# Drivers this launcher process started: reaped with poll() so they do not linger as zombies.
_children = {}
# When a cancel's SIGTERM was sent, per job: SIGKILL follows after DMARKET_CANCEL_GRACE.
_term_sent = {}


def process_alive(pid, job_dir):
    """The job's wrapper is still running (and the pid was not reused by another process)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != b"Z" and str(job_dir).encode() in cmdline


def read_exit_code(job):
    try:
        return int((job.work_dir / "exit_code").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def launcher_claim(launcher_id):
    """Claim the next queued job, round-robin across users; None when there is none.

    The user whose last job started longest ago (or never) goes first, with their oldest
    queued job, so one user's hundred jobs cannot starve another's one.
    """
    queued = list(Job.objects.filter(status=Job.QUEUED, cancel_requested=False)
                  .order_by("created_at", "id").values_list("id", "user_id")[:1000])
    if not queued:
        return None
    first = {}
    for job_id, user_id in queued:
        first.setdefault(user_id, job_id)
    last_started = dict(Job.objects.filter(user_id__in=first, started_at__isnull=False)
                        .values("user_id").annotate(last=Max("started_at"))
                        .values_list("user_id", "last"))
    epoch = datetime.min.replace(tzinfo=dt_timezone.utc)
    order = sorted(first, key=lambda user_id: (last_started.get(user_id) or epoch,
                                               first[user_id]))
    for user_id in order:
        now = timezone.now()
        won = Job.objects.filter(pk=first[user_id], status=Job.QUEUED).update(
            status=Job.STARTING, launcher=launcher_id, started_at=now)
        if won:
            return Job.objects.get(pk=first[user_id])
    return None


def job_start(job):
    """Start the claimed job's driver; a job that cannot start fails with the reason."""
    job.output_dir.mkdir(parents=True, exist_ok=True)
    settings.DMARKET_EVENT_LOG_DIR.mkdir(parents=True, exist_ok=True)
    # By path, not -m: the wrapper must not depend on the driver's working directory.
    argv = [sys.executable, wrapper.__file__, str(job.work_dir), "--", *spark.submit_argv(job)]
    try:
        with open(job.log_path, "ab") as output:
            child = subprocess.Popen(argv, env=spark.driver_env(job), cwd=job.work_dir,
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                     start_new_session=True)
    except OSError as e:
        job_finish(job, Job.FAILED, f"the driver could not start: {e}")
        return
    _children[child.pid] = child
    job.driver_pid = child.pid
    job.save(update_fields=["driver_pid"])
    log.info("job %s: driver started (pid %s)", job.pk, child.pid)


def job_finish(job, status, reason, exit_code=None):
    """Record the job's end (once: only a job still STARTING or RUNNING changes), then bill."""
    now = timezone.now()
    changed = Job.objects.filter(pk=job.pk, status__in=(Job.STARTING, Job.RUNNING)).update(
        status=status, status_reason=reason[:500], exit_code=exit_code, finished_at=now)
    job.refresh_from_db()
    if changed:
        log.info("job %s: %s (%s)", job.pk, status, reason)
    job_settle(job)


def job_signal(job, sig):
    try:
        os.killpg(job.driver_pid, sig)
    except (ProcessLookupError, PermissionError, TypeError):
        pass


def job_stop(job):
    """Stop a job whose cancel (or credit cap) was asked for: TERM, then KILL after a grace."""
    sent = _term_sent.get(job.pk)
    if sent is None:
        _term_sent[job.pk] = time.monotonic()
        if job.spark_app_id and not spark.is_yarn():
            spark.master_kill_app(job.spark_app_id)
        job_signal(job, signal.SIGTERM)
    elif time.monotonic() - sent > settings.DMARKET_CANCEL_GRACE:
        job_signal(job, signal.SIGKILL)


def driver_reap(job, kill):
    """After the driver's end: kill whatever it left in its process group (a Python driver
    still shutting down, children the user's code started) and reap the wrapper.

    Only while the wrapper was seen alive: once it is gone, its pid may be another's."""
    _term_sent.pop(job.pk, None)
    if kill:
        job_signal(job, signal.SIGKILL)
    child = _children.pop(job.driver_pid, None)
    if child is not None:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("job %s: the driver's wrapper (pid %s) did not exit", job.pk, child.pid)


def stopped_status(job):
    return (job.stop_status or Job.CANCELLED, job.status_reason or "cancelled")


def job_follow(job):
    """One look at a starting or running job: its application id, its end, a cancel."""
    # Alive first, then the exit code: the wrapper writes the code before it exits, so a
    # wrapper gone without a code really vanished.
    alive = job.driver_pid is not None and process_alive(job.driver_pid, job.work_dir)
    code = read_exit_code(job)
    if code is not None:
        driver_reap(job, kill=alive)
        if job.cancel_requested:
            status, reason = stopped_status(job)
        elif code == 0:
            status, reason = Job.SUCCEEDED, "the driver exited with code 0"
        else:
            status, reason = Job.FAILED, f"the driver exited with code {code}"
        job_finish(job, status, reason, exit_code=code)
        return
    if not alive:
        driver_reap(job, kill=False)
        if job.cancel_requested:
            job_finish(job, *stopped_status(job))
        else:
            job_finish(job, Job.LOST, "the driver vanished without an exit code")
        return
    if not job.spark_app_id:
        app_id = spark.app_id_from_log(job.log_path)
        if app_id:
            Job.objects.filter(pk=job.pk).update(spark_app_id=app_id)
            Job.objects.filter(pk=job.pk, status=Job.STARTING).update(status=Job.RUNNING)
            job.refresh_from_db()
            log.info("job %s: running as %s", job.pk, app_id)
    if job.cancel_requested:
        job_stop(job)


def launcher_tick(launcher_id=None):
    """One iteration: follow this launcher's jobs, settle finished ones, start queued ones."""
    launcher_id = launcher_id or settings.DMARKET_LAUNCHER_ID
    active = Job.objects.filter(launcher=launcher_id, status__in=(Job.STARTING, Job.RUNNING))
    for job in active:
        job_follow(job)
    for job in Job.objects.filter(launcher=launcher_id, status__in=Job.FINISHED,
                                  settled_at__isnull=True, finished_at__isnull=False):
        job_settle(job)
    started = 0
    running = Job.objects.filter(launcher=launcher_id,
                                 status__in=(Job.STARTING, Job.RUNNING)).count()
    while running < settings.DMARKET_DRIVER_SLOTS:
        job = launcher_claim(launcher_id)
        if job is None:
            break
        job_start(job)
        running += 1
        started += 1
    return started
