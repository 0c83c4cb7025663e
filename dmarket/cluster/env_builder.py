"""Building environments, one at a time per launcher, from its loop (`env_build_tick`).

pip runs in the drivers' sandbox (dmarket.cluster.sandbox): the sandbox user, the host's
network less the market's services, only its build directory writable, memory and processes
limited. By default from wheels only (`--only-binary=:all:` in DMARKET_ENV_PIP_ARGS): no
package's own code runs while it builds. Packing is the launcher's: it stores links as links.
"""

import logging
import os
import shutil
import signal
import sys
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dmarket.cluster import sandbox
from dmarket.envs.models import Environment
from dmarket.envs.services import BadEnvironment, env_pack, log_tail
from dmarket.files.storage import StorageUnavailable, blobs

log = logging.getLogger(__name__)

# Environment id -> (the wrapper's Popen, monotonic start, its cgroups).
_builds = {}
# When each build's disk use was last measured.
_sized = {}
SIZE_CHECK_INTERVAL = 5.0


def build_profile(env):
    home = env.build_dir / "home"
    return sandbox.Profile(
        name=f"env-{env.pk}",
        env={**sandbox.base_env(), "HOME": str(home), "TMPDIR": str(env.build_dir / "tmp"),
             "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
             "PIP_NO_CACHE_DIR": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        chdir=home, readable=[env.build_dir],
        writable=[env.build_dir / "site", home, env.build_dir / "tmp"],
        memory_mb=settings.DMARKET_ENV_BUILD_MEMORY_MB,
        max_procs=settings.DMARKET_SANDBOX_MAX_PROCS,
        max_open_files=settings.DMARKET_SANDBOX_MAX_OPEN_FILES,
        max_file_mb=settings.DMARKET_ENV_MAX_MB, tmp_mb=settings.DMARKET_SANDBOX_TMP_MB)


def build_command(env):
    return [sys.executable, "-m", "pip", "install", "--no-input", "--target",
            str(env.build_dir / "site"), "--no-warn-script-location", "--no-compile",
            *settings.DMARKET_ENV_PIP_ARGS, "-r", str(env.build_dir / "requirements.txt")]


def env_build_orphan_kill(env):
    """End the build a launcher of this name started before it restarted (its wrapper names
    the build directory on its command line), so that two pips never share a directory."""
    from dmarket.cluster.launcher import process_alive

    try:
        pid = int((env.build_dir / "wrapper.pid").read_text())
    except (OSError, ValueError):
        return
    if process_alive(pid, env.build_dir):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def env_build_start(env):
    env_build_orphan_kill(env)
    shutil.rmtree(env.build_dir, ignore_errors=True)
    env.build_dir.mkdir(parents=True)
    (env.build_dir / "requirements.txt").write_text(env.requirements)
    sandbox.give_to_sandbox(env.build_dir / "site", env.build_dir / "home",
                            env.build_dir / "tmp")
    env.log_path.write_text(f"dmarket: building the environment {env.key[:12]} "
                            f"(Python {env.python}, {env.platform}):\n{env.requirements}")
    try:
        child, cgroups, _ = sandbox.start(build_profile(env), build_command(env), env.build_dir,
                                          env.log_path)
    except (OSError, sandbox.Unavailable) as e:
        env_build_failed(env, f"the build could not start: {e}")
        return
    (env.build_dir / "wrapper.pid").write_text(str(child.pid))
    _builds[env.pk] = (child, time.monotonic(), cgroups)
    log.info("environment %s: building (pid %s)", env.key[:12], child.pid)


def env_build_failed(env, reason):
    from dmarket.jobs.services import job_fail_queued

    _builds.pop(env.pk, None)
    failed_at = timezone.now()
    changed = Environment.objects.filter(pk=env.pk, status=Environment.BUILDING).update(
        status=Environment.FAILED, error=reason[-4000:], builder="")
    shutil.rmtree(env.build_dir / "site", ignore_errors=True)
    shutil.rmtree(env.build_dir / "tmp", ignore_errors=True)
    if not changed:
        return
    log.warning("environment %s: the build failed: %s", env.key[:12], reason[-300:])
    # Not a job submitted after the failure: it asked for the build again.
    for job in env.jobs.filter(status="QUEUED", created_at__lte=failed_at):
        job_fail_queued(job, f"its environment could not be built: {reason[-400:]}")


def build_size(env):
    total = 0
    for root, _, files in os.walk(env.build_dir):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def env_archive_store(env):
    """Copy the packed environment into an object store, whence executors fetch it; its key,
    or "" (the local store, or the object store failing: then the server serves it)."""
    store = blobs()
    if store.kind == "local":
        return ""
    key = f"envs/{env.key}.tar.gz"
    try:
        store.put_file(key, env.archive_path)
    except StorageUnavailable as e:
        log.warning("environment %s: served by this server, not the store: %s", env.key,
                    e.detail)
        return ""
    return key


def env_build_done(env):
    site = env.build_dir / "site"
    try:
        size, sha256 = env_pack(site, env.archive_path, env.requirements, env.python,
                                env.platform)
    except (OSError, BadEnvironment) as e:
        env_build_failed(env, f"could not pack it: {e}")
        return
    Environment.objects.filter(pk=env.pk, status=Environment.BUILDING).update(
        status=Environment.READY, size=size, sha256=sha256, built_at=timezone.now(),
        builder="", blob=env_archive_store(env))
    _builds.pop(env.pk, None)
    shutil.rmtree(site, ignore_errors=True)
    log.info("environment %s: ready (%s bytes)", env.key[:12], size)


def env_build_follow(env):
    from dmarket.cluster.launcher import read_exit_code

    entry = _builds.get(env.pk)
    if entry is None:
        # Claimed by this launcher before it restarted: build it again.
        env_build_start(env)
        return
    child, started, cgroups = entry
    if child.poll() is None:
        problem = ""
        if time.monotonic() - started > settings.DMARKET_ENV_BUILD_TIMEOUT:
            problem = f"the build took longer than {settings.DMARKET_ENV_BUILD_TIMEOUT} s"
        elif time.monotonic() - _sized.get(env.pk, 0) > SIZE_CHECK_INTERVAL:
            # A file's size is capped by its rlimit; their sum only here.
            _sized[env.pk] = time.monotonic()
            if build_size(env) > settings.DMARKET_ENV_MAX_MB * 1024 * 1024:
                problem = f"the build wrote more than {settings.DMARKET_ENV_MAX_MB} MB"
        if problem:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
            sandbox.cgroups_remove(cgroups)
            env_build_failed(env, problem)
        return
    sandbox.cgroups_remove(cgroups)
    code = read_exit_code(env)
    if code == 0:
        env_build_done(env)
    else:
        env_build_failed(env, f"pip exited with {code}:\n{log_tail(env)}")


def env_build_tick(launcher_id):
    """Follow this launcher's build, and claim the next environment to build when it has
    none. Each environment on its own: one that raises does not stop the others."""
    for env in Environment.objects.filter(status=Environment.BUILDING, builder=launcher_id):
        try:
            env_build_follow(env)
        except Exception:  # noqa: BLE001 - one bad build must not stall the launcher
            log.exception("environment %s", env.key[:12])
            env_build_failed(env, "the build failed on the launcher (see its log)")
    if _builds:
        return
    # A claim whose launcher went away (every build ends within its timeout) is free again.
    stale = timezone.now() - timedelta(seconds=settings.DMARKET_ENV_BUILD_TIMEOUT + 60)
    Environment.objects.filter(status=Environment.BUILDING, build_started_at__lt=stale).exclude(
        builder="").update(builder="")
    waiting = Environment.objects.filter(status=Environment.BUILDING, builder="")
    for env in waiting.order_by("id")[:10]:
        won = Environment.objects.filter(pk=env.pk, status=Environment.BUILDING,
                                         builder="").update(builder=launcher_id,
                                                            build_started_at=timezone.now())
        if won:
            env.refresh_from_db()
            try:
                env_build_start(env)
            except Exception:  # noqa: BLE001
                log.exception("environment %s", env.key[:12])
                env_build_failed(env, "the build could not start (see the launcher's log)")
            return
