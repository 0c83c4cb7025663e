"""The launcher: claims queued jobs, runs each driver with spark-submit in client mode, follows
it to its end, and stops it on cancel.

Several launchers (one per host) may share the queue: a job is claimed by a conditional UPDATE
that only one of them can win. Drivers run in sandboxes (dmarket.cluster.sandbox), in sessions
of their own through dmarket.cluster.wrapper, which writes the exit code to the job's
directory, so they outlive a launcher that dies and a restarted launcher picks up where it
left off. The launcher enforces what the sandbox cannot: a job's wall-clock limit, the quota
of its results and log, and that it runs one application, its verified one.
"""

import logging
import os
import shutil
import signal
import stat
import subprocess
import time
import zlib
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from dmarket.common.daemon import RowGuard
from dmarket.envs.services import BadEnvironment, BadWorkdir
from dmarket.files.storage import StorageUnavailable
from dmarket.jobs.lifecycle import (job_claim, job_finish, job_mark_running, job_request_stop,
                                    stop_outcome)
from dmarket.jobs.models import Job
from dmarket.jobs.results import job_results_store
from dmarket.jobs.services import job_mark_stuck
from dmarket.machines.models import Machine

from . import police, sandbox, security, spark
from .env_builder import env_build_tick
from .wrapper import group_members

log = logging.getLogger(__name__)

# Drivers this launcher process started: reaped with poll() so they do not linger as zombies.
_children = {}
# When a cancel's SIGTERM was sent, per job: SIGKILL to all but the wrapper follows after
# DMARKET_CANCEL_GRACE (_kill_sent: when), and to the wrapper too a grace after that.
_term_sent = {}
_kill_sent = {}
# When each job's disk use was last measured (a walk of its directory).
_disk_checked = {}
DISK_CHECK_INTERVAL = 2.0
# Finished jobs whose results one pass records and copies: a backlog drains over a few passes.
RESULTS_PER_TICK = 20

_sandbox_warned = {}


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


def online_offers():
    """What online machines offer, grouped: (Python, platform, machine type, the most GPUs one
    of them offers)."""
    return list(Machine.objects.filter(state=Machine.ONLINE)
                .values("python", "platform", "machine_type").annotate(most=Max("gpus"))
                .values_list("python", "platform", "machine_type", "most"))


def claimable(queued, offers=None):
    """Queued jobs that can start: those whose environment (if any) is built, and that some
    one online machine fits, running its environment's Python and platform and offering its
    executors' GPUs (else its executors could run nowhere). `offers`: what online_offers()
    says, when the caller has it already."""
    fits = Q(env_python="", gpus_per_executor=0)
    for python, platform, machine_type, most in (online_offers() if offers is None
                                                 else offers):
        env = Q(env_python="")
        if python:
            env |= Q(env_python=python, env_platform=platform)
        gpus = Q(gpus_per_executor=0)
        if most:
            gpus |= Q(machine_type=machine_type, gpus_per_executor__lte=most)
        fits |= env & gpus
    return queued.filter(fits).filter(Q(environment__isnull=True) |
                                      Q(environment__status="READY"))


def waiting_reasons():
    """Say on each queued job that waits for its environment or its GPUs why it waits."""
    waiting = Job.objects.filter(status=Job.QUEUED).filter(~Q(env_python="")
                                                           | Q(gpus_per_executor__gt=0))
    if not waiting.exists():
        return
    offers = online_offers()
    pythons = {(python, platform) for python, platform, _, _ in offers if python}
    gpus = {}
    for _, _, machine_type, most in offers:
        gpus[machine_type] = max(gpus.get(machine_type, 0), most)
    for job in waiting.exclude(pk__in=claimable(waiting, offers).values("pk")
                               ).select_related("environment")[:1000]:
        if job.environment_id and job.environment.status != "READY":
            reason = "waiting: its environment is being built"
        elif job.env_python and (job.env_python, job.env_platform) not in pythons:
            reason = (f"waiting: no online machine runs Python {job.env_python} on "
                      f"{job.env_platform}, which its environment is for")
        elif job.gpus_per_executor > gpus.get(job.machine_type, 0):
            reason = (f"waiting: no online machine offers {job.gpus_per_executor} of resource "
                      f"{job.machine_type!r} (each executor's); the most one offers now is "
                      f"{gpus.get(job.machine_type, 0)}")
        else:
            reason = (f"waiting: no online machine both runs Python {job.env_python} on "
                      f"{job.env_platform} and offers {job.gpus_per_executor} of resource "
                      f"{job.machine_type!r}")
        if job.status_reason != reason:
            Job.objects.filter(pk=job.pk, status=Job.QUEUED).update(status_reason=reason)


def launcher_claim(launcher_id):
    """Claim the next queued job, round-robin across users; None when there is none.

    The user whose last job started longest ago (or never) goes first, with their oldest
    queued job, so one user's hundred jobs cannot starve another's one.
    """
    queued = list(claimable(Job.objects.filter(status=Job.QUEUED, cancel_requested=False))
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
        job = job_claim(first[user_id], launcher_id)
        if job is not None:
            return job
    return None


def server_paths(job):
    """The paths on this host an operator's job names (users' jobs may not name any)."""
    from urllib.parse import urlsplit

    from dmarket.jobs.uris import split_alias

    paths = []
    for uri in [job.entry_file, *job.libs, *job.archives, *job.files]:
        base = split_alias(uri)[0] if "#" in uri else uri
        path = urlsplit(base).path if base.startswith("file:") else base
        if path.startswith("/"):
            paths.append(path)
    return paths


def job_profile(job, site=None):
    """What the job's driver sandbox sees and may do; `site`: its environment, unpacked."""
    from dmarket.envs.services import executor_site_file

    extra = ([site] if site else []) + ([executor_site_file().parent] if job.working_dir else [])
    return sandbox.Profile(
        name=f"job-{job.pk}", env=spark.driver_env(job, site), chdir=job.home_dir,
        readable=[job.work_dir, *server_paths(job), *extra],
        writable=[job.output_dir, job.events_dir, job.home_dir],
        memory_mb=job.driver_memory + settings.DMARKET_DRIVER_MEMORY_OVERHEAD_MB,
        max_procs=settings.DMARKET_SANDBOX_MAX_PROCS,
        max_open_files=settings.DMARKET_SANDBOX_MAX_OPEN_FILES,
        max_file_mb=settings.DMARKET_JOB_DISK_QUOTA_MB, tmp_mb=settings.DMARKET_SANDBOX_TMP_MB)


def sandbox_note(profile, unlimited):
    mode, _ = sandbox.check()
    if mode == "off":
        return "dmarket: the driver runs WITHOUT a sandbox (DMARKET_SANDBOX=off)\n"
    who = (f"user {settings.DMARKET_SANDBOX_USER}" if mode == "root" else "a user namespace")
    note = (f"dmarket: the driver runs in a sandbox ({who}): memory {profile.memory_mb} MB, "
            f"{profile.max_procs} processes, {profile.max_open_files} open files, results and "
            f"log {settings.DMARKET_JOB_DISK_QUOTA_MB} MB, /tmp {profile.tmp_mb} MB")
    if unlimited:
        note += f"; not limited here (no cgroup): {', '.join(unlimited)}"
    return note + "\n"


def job_start(job):
    """Start the claimed job's driver in its sandbox; a job that cannot start fails with the
    reason."""
    job.work_dir.mkdir(parents=True, exist_ok=True)
    settings.DMARKET_EVENT_LOG_DIR.mkdir(parents=True, exist_ok=True)
    try:
        sandbox.give_to_sandbox(job.output_dir, job.events_dir, job.home_dir)
        # Readable by the driver alone: it must hold the cluster's secret to join.
        security.write_properties(spark.properties_path(job), owner=sandbox.sandbox_owner())
        site = job_runtime_prepare(job)
        profile = job_profile(job, site)
        child, _, _ = sandbox.start(profile, spark.submit_argv(job), job.work_dir, job.log_path,
                                    note=lambda unlimited: sandbox_note(profile, unlimited))
    except (OSError, KeyError, zlib.error, sandbox.Unavailable, BadEnvironment,
            BadWorkdir) as e:
        job_end(job, Job.FAILED, f"the driver could not start: {e}")
        return
    except StorageUnavailable as e:
        # Its environment or working directory could not be fetched from the file store.
        job_end(job, Job.FAILED, f"the driver could not start: {e.detail}")
        return
    _children[child.pid] = child
    job.driver_pid = child.pid
    job.save(update_fields=["driver_pid"])
    log.info("job %s: driver started (pid %s)", job.pk, child.pid)


def job_runtime_prepare(job):
    """Unpack the job's working directory into its home and its environment on this host;
    returns the environment's site directory (None without one)."""
    from dmarket.envs.services import (env_unpack, job_env_archive, job_workdir_archive,
                                       workdir_unpack)

    if job.working_dir:
        workdir_unpack(job_workdir_archive(job), job.home_dir, owner=sandbox.sandbox_owner())
    archive = job_env_archive(job)
    return env_unpack(*archive) if archive else None


def job_end(job, status, reason, exit_code=None):
    """Record the job's end (the billing daemon settles it) and link its event log."""
    job_finish(job, status, reason, exit_code=exit_code)
    if job.spark_app_id:
        event_log_link(job)


def job_disk_use(job, max_entries):
    """(bytes, entries) of the job's directory (results, event log, home, driver log),
    directories included; links count as what they are, never followed. Stops counting past
    max_entries, so that a job of a million empty files cannot stall the launcher."""
    total, count, stack = 0, 0, [str(job.work_dir)]
    while stack and count <= max_entries:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            count += 1
            try:
                total += entry.stat(follow_symlinks=False).st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
            except OSError:
                continue
    return total, count


def job_limits(job):
    """Stop a job past its wall-clock limit or its disk quota."""
    if job.cancel_requested:
        return
    if job.started_at and (timezone.now() - job.started_at).total_seconds() > job.runtime_limit:
        job_request_stop(job, Job.FAILED, f"the job ran past its max_runtime of "
                                          f"{job.runtime_limit} s")
        return
    now = time.monotonic()
    if now - _disk_checked.get(job.pk, 0) < DISK_CHECK_INTERVAL:
        return
    _disk_checked[job.pk] = now
    quota, most = settings.DMARKET_JOB_DISK_QUOTA_MB, settings.DMARKET_JOB_MAX_FILES
    used, entries = job_disk_use(job, most)
    if used > quota * 1024 * 1024:
        job_request_stop(job, Job.FAILED, f"its results and log passed their quota of "
                                          f"{quota} MB")
    elif entries > most:
        job_request_stop(job, Job.FAILED, f"its directory passed {most} files")


def event_log_link(job):
    """Link the job's verified application's event log into the history server's directory
    (the only way an event log gets there: a job's own directory is its sandbox's)."""
    log_path = spark.event_logs(job).get(job.spark_app_id)
    if log_path is None:
        return
    history = settings.DMARKET_EVENT_LOG_DIR
    target = history / log_path.name
    try:
        # The job may swap its file for a link at any moment: only the regular file opened
        # here, without following links, may end up linked.
        fd = os.open(log_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        log.warning("job %s: its event log cannot be opened: %s", job.pk, e)
        return
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return
        try:
            current = os.stat(target, follow_symlinks=False)
            if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                return
        except FileNotFoundError:
            pass
        for other in history.glob(f"{job.spark_app_id}*"):
            other.unlink()
        try:
            os.link(log_path, target)
        except OSError:
            # Another file system: a copy from the opened file, refreshed at each look.
            with open(target, "wb") as out, os.fdopen(os.dup(fd), "rb") as source:
                shutil.copyfileobj(source, out)
        else:
            linked = os.stat(target, follow_symlinks=False)
            if (linked.st_dev, linked.st_ino) != (opened.st_dev, opened.st_ino):
                # Swapped between the open and the link: not the file that was checked.
                target.unlink()
    except OSError as e:
        log.warning("job %s: could not link its event log: %s", job.pk, e)
    finally:
        os.close(fd)


def master_state():
    """The master's state once per iteration (None on YARN or when it does not answer)."""
    if spark.is_yarn():
        return None
    try:
        return spark.master_state()
    except spark.SparkUnavailable:
        return None


def job_app_check(job, state):
    """Verify the job's application from the master, and kill every other application the
    job runs or that shows its tag: a job owns one application, billed and cancellable."""
    if state is None:
        return
    mine, impostors = spark.job_apps(job, state)
    if not job.spark_app_id and mine:
        app_id = mine[0]["id"]
        # One job per application: a claim on an id another job holds is refused.
        if not Job.objects.filter(spark_app_id=app_id).exclude(pk=job.pk).exists():
            Job.objects.filter(pk=job.pk, spark_app_id="").update(spark_app_id=app_id)
            job_mark_running(job.pk)
            job.refresh_from_db()
            log.info("job %s: running as %s (verified)", job.pk, app_id)
    active = spark.active_app_ids(state)
    # The master lists an application a moment before its driver writes its event log: on a
    # busy host, seconds before. Until the job has its own, one showing its tag is likelier
    # its own, slow, than another's: it gets the police's grace for a starting job's.
    grace = (settings.DMARKET_APP_GRACE if job.spark_app_id
             else settings.DMARKET_APP_VERIFY_GRACE)
    now_ms = time.time() * 1000
    late = [a for a in impostors if now_ms - a.get("starttime", now_ms) > grace * 1000]
    for app in mine + late:
        if app["id"] != job.spark_app_id and app["id"] in active:
            log.warning("job %s: killing application %s, which is not its verified one",
                        job.pk, app["id"])
            with open(job.log_path, "ab") as output:
                output.write(f"dmarket: application {app['id']} killed: a job runs one "
                             f"application ({job.spark_app_id or 'not yet verified'})\n"
                             .encode())
            spark.master_kill_app(app["id"])
            if app in mine:
                # Its own (its event log is in its directory): a second application would run
                # outside its bill and its cancel, and its driver may hang on the killed one.
                job_request_stop(job, Job.FAILED, f"the job started a second Spark application "
                                                  f"({app['id']}), which the market killed")
    if job.spark_app_id:
        event_log_link(job)


def job_signal(job, sig):
    try:
        os.killpg(job.driver_pid, sig)
    except (ProcessLookupError, PermissionError, TypeError):
        pass


def job_stop(job):
    """Stop a job whose cancel (or credit cap) was asked for: TERM to its process group; after
    the grace, KILL to all of it but the wrapper, which then records the driver's end (137) as
    it records any; a wrapper still there a grace after that KILL is killed too (no exit
    code)."""
    sent, killed = _term_sent.get(job.pk), _kill_sent.get(job.pk)
    now = time.monotonic()
    if sent is None:
        _term_sent[job.pk] = now
        if job.spark_app_id and not spark.is_yarn():
            spark.master_kill_app(job.spark_app_id)
        job_signal(job, signal.SIGTERM)
    elif killed is None:
        if now - sent > settings.DMARKET_CANCEL_GRACE:
            _kill_sent[job.pk] = now
            driver_kill(job)
    elif now - killed > settings.DMARKET_CANCEL_GRACE:
        job_signal(job, signal.SIGKILL)


def driver_kill(job):
    """KILL the job's process group but its wrapper (the group's leader: job_follow saw it
    alive, so the group is the job's)."""
    if not job.driver_pid:
        return
    for pid in group_members(job.driver_pid):
        if pid != job.driver_pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone meanwhile, or not ours to signal (a setuid program)
                pass


def driver_reap(job, kill):
    """After the driver's end: kill whatever it left in its process group (a Python driver
    still shutting down, children the user's code started) and reap the wrapper.

    Only while the wrapper was seen alive: once it is gone, its pid may be another's, and only
    the processes of its group that carry the job's id are killed (leftovers_kill)."""
    _term_sent.pop(job.pk, None)
    _kill_sent.pop(job.pk, None)
    _disk_checked.pop(job.pk, None)
    if kill:
        job_signal(job, signal.SIGKILL)
    else:
        leftovers_kill(job)
    child = _children.pop(job.driver_pid, None)
    if child is not None:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("job %s: the driver's wrapper (pid %s) did not exit", job.pk, child.pid)
    sandbox.cgroups_remove(sandbox.cgroup_dirs(f"job-{job.pk}").values())


def leftovers_kill(job):
    """Kill what a vanished wrapper left of the job: the processes still in its process group
    whose environment names the job (DMARKET_JOB_ID, which every driver gets). In a sandbox
    they die with the wrapper (bubblewrap's --die-with-parent, the cgroup); without one (or a
    driver that left it) they would outlive the job, unbilled."""
    if not job.driver_pid:
        return
    mark = f"DMARKET_JOB_ID={job.pk}".encode()
    for pid in group_members(job.driver_pid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
        log.warning("job %s: killed process %s, which its vanished driver left", job.pk, pid)


def exit_reason(job, code):
    if sandbox.cgroup_oom(sandbox.cgroup_dirs(f"job-{job.pk}").values()):
        return (f"the driver passed its memory limit of {job.driver_memory} MB "
                f"(+{settings.DMARKET_DRIVER_MEMORY_OVERHEAD_MB} MB for its Python) and was "
                f"killed (exit code {code})")
    return f"the driver exited with code {code}"


def job_follow(job, state=None):
    """One look at a starting or running job: its application id, its end, a cancel."""
    # Alive first, then the exit code: the wrapper writes the code before it exits, so a
    # wrapper gone without a code really vanished.
    alive = job.driver_pid is not None and process_alive(job.driver_pid, job.work_dir)
    code = read_exit_code(job)
    if code is not None:
        if job.cancel_requested:
            status, reason = stop_outcome(job)
        elif code == 0:
            status, reason = Job.SUCCEEDED, "the driver exited with code 0"
        else:
            status, reason = Job.FAILED, exit_reason(job, code)
        driver_reap(job, kill=alive)
        job_end(job, status, reason, exit_code=code)
        return
    if not alive:
        driver_reap(job, kill=False)
        if job.cancel_requested:
            job_end(job, *stop_outcome(job))
        else:
            job_end(job, Job.LOST, "the driver vanished without an exit code")
        return
    job_app_check(job, state)
    job_limits(job)
    if job.cancel_requested:
        job_stop(job)


_worker_uis = {"at": -1e9, "urls": ()}


def worker_uis():
    """The web UIs of the master's workers (their executors' logs), looked up every 10 s."""
    if time.monotonic() - _worker_uis["at"] > 10:
        state = master_state() or {}
        _worker_uis.update(at=time.monotonic(), urls=tuple(sorted(
            w.get("webuiaddress", "") for w in state.get("workers", [])
            if w.get("webuiaddress"))))
    return _worker_uis["urls"]


def launcher_sandbox_ready():
    """Whether drivers can start here; when not, says so in the log and on queued jobs."""
    mode, problem = sandbox.check()
    if not problem:
        problem = sandbox.network_apply(worker_uis())
        if problem:
            problem = f"the sandbox's network cannot be filtered: {problem}"
    if not problem:
        return True
    reason = f"waiting: no driver can start: {problem}"[:500]
    if time.monotonic() - _sandbox_warned.get("sandbox", -1e9) > 60:
        _sandbox_warned["sandbox"] = time.monotonic()
        log.error("no sandbox can be made, so no driver starts (DMARKET_SANDBOX=off runs them "
                  "unsandboxed): %s", problem)
    Job.objects.filter(status=Job.QUEUED).exclude(status_reason=reason).update(
        status_reason=reason)
    return False


_policed = {"at": -1e9}
# Each job on its own in each of the launcher's loops (dmarket.common.daemon.RowGuard).
_guards = {"follow": RowGuard("launcher", job_mark_stuck("launcher")),
           # A store that is down delays the copy, not the job's end: retried, not marked.
           "results": RowGuard("launcher (storing results)")}


def launcher_tick(launcher_id=None):
    """One iteration: follow this launcher's jobs, settle finished ones, start queued ones."""
    launcher_id = launcher_id or settings.DMARKET_LAUNCHER_ID
    active = list(Job.objects.filter(launcher=launcher_id,
                                     status__in=(Job.STARTING, Job.RUNNING)))
    policing = time.monotonic() - _policed["at"] > settings.DMARKET_POLICE_INTERVAL
    state = master_state() if active or policing else None
    _guards["follow"].run(active, lambda job: job_follow(job, state))
    if policing:
        _policed["at"] = time.monotonic()
        try:
            police.cluster_police(state, launcher_id)
        except Exception:  # noqa: BLE001 - the police must not stop the launcher
            log.exception("policing the cluster")
    # One deadline for the pass, not one a job: the launcher follows and starts jobs soon.
    deadline = time.monotonic() + settings.DMARKET_RESULTS_PASS_SECONDS
    _guards["results"].run(Job.objects.filter(
        launcher=launcher_id, status__in=Job.FINISHED, finished_at__isnull=False,
        results_stored_at__isnull=True).exclude(pk__in=_guards["results"].backed_off())
        .order_by("finished_at")[:RESULTS_PER_TICK],
        lambda job: job_results_store(job, deadline))
    started = 0
    if not launcher_sandbox_ready():
        return started
    env_build_tick(launcher_id)
    waiting_reasons()
    running = Job.objects.filter(launcher=launcher_id,
                                 status__in=(Job.STARTING, Job.RUNNING)).count()
    while running < settings.DMARKET_DRIVER_SLOTS:
        job = launcher_claim(launcher_id)
        if job is None:
            break
        try:
            job_start(job)
        except Exception:  # noqa: BLE001 - the next claims must go on
            log.exception("job %s: the driver could not start", job.pk)
            job_end(job, Job.FAILED, "the driver could not start: an error of the "
                                        "launcher's (its log has it)")
        running += 1
        started += 1
    return started
