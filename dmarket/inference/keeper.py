"""The inference server's keeper: while inference jobs wait or run, one driver process of
dmarket/inference/server.py runs under spark-submit in client mode (as the launcher runs
jobs' drivers); the driver stops itself once it has been idle for DMARKET_INFERENCE_IDLE.

The driver is the market's own code, not a user's (users' models run only in the executors):
it starts through dmarket.cluster.sandbox like every driver, as the server's own identity with
the database in its environment, seeing the system, the code and the data directory; and it
takes a PostgreSQL advisory lock, so that two keepers on two hosts cannot both serve.
"""

import logging
import os
import sys
import zipfile
from pathlib import Path

from django.conf import settings

from dmarket.cluster import police, sandbox, security, spark
from dmarket.cluster.wrapper import group_members
from dmarket.common.daemon import RowGuard
from dmarket.jobs.lifecycle import stop_outcome

from . import server as server_module
from .models import InferenceJob
from .services import inference_bill, inference_finish

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
LENET = REPO / "sample" / "mnist" / "mnist_common.py"
# The executors' side: executor.py, as a package of its own (no Django). The driver sends the
# inputs in the batches, so the executors no longer need references.py.
SHIPPED = ["dmarket/__init__.py", "dmarket/inference/__init__.py",
           "dmarket/inference/executor.py"]

_child = None


def server_dir():
    path = Path(settings.DMARKET_INFERENCE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def executor_zip():
    path = server_dir() / "inference-executor.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in SHIPPED:
            z.write(REPO / name, name)
    return path


def server_argv():
    """spark-submit's argv for the inference server's driver; no user value in it."""
    conf = {
        "spark.scheduler.mode": "FAIR",
        # Thousands of one-batch Spark jobs: an event log of them would cost the driver more
        # than it tells (billing and statistics come from the recorded batches), and the UI
        # keeps only the latest.
        "spark.eventLog.enabled": "false",
        "spark.ui.retainedJobs": 100,
        "spark.ui.retainedStages": 100,
        "spark.ui.retainedTasks": 1000,
        "spark.driver.host": settings.DMARKET_DRIVER_HOST,
        "spark.executorEnv.PYSPARK_PYTHON": settings.DMARKET_EXECUTOR_PYTHON,
        "spark.executorEnv.DMARKET_INFER_THREADS": settings.DMARKET_EXECUTOR_CORES,
        # Batches are short: waiting for a preferred executor only delays them.
        "spark.locality.wait": "0s",
        "spark.dmarket.inference": "true",
        # Its UI stays (the driver reads its executors there), without the kill buttons.
        "spark.ui.killEnabled": "false",
        "spark.driver.extraJavaOptions": f"-Duser.name={police.INFERENCE_USER}",
    }
    if settings.DMARKET_INFERENCE_CORES:
        conf["spark.cores.max"] = settings.DMARKET_INFERENCE_CORES
    if settings.DMARKET_INFERENCE_GPUS:
        # Each task holds all of its executor's GPUs: one batch at a time uses them.
        conf["spark.executor.resource.gpu.amount"] = settings.DMARKET_INFERENCE_GPUS
        conf["spark.task.resource.gpu.amount"] = settings.DMARKET_INFERENCE_GPUS
    for name, value in settings.DMARKET_JOB_ENV.items():
        conf[f"spark.executorEnv.{name}"] = value
    argv = [str(spark.spark_home() / "bin" / "spark-submit"),
            "--master", settings.DMARKET_SPARK_MASTER_URL,
            "--deploy-mode", "client",
            *spark.properties_args(security.write_properties(server_dir() / "spark.conf")),
            "--name", "dmarket inference server",
            "--executor-cores", str(settings.DMARKET_EXECUTOR_CORES),
            "--executor-memory", f"{settings.DMARKET_INFERENCE_EXECUTOR_MEMORY_MB}m",
            "--py-files", f"{executor_zip()},{LENET}"]
    for name, value in conf.items():
        argv += ["--conf", f"{name}={value}"]
    return argv + [server_module.__file__]


def server_env():
    env = sandbox.base_env()
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DMARKET_DATA_DIR", "PYTHONPATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    env["SECRET_KEY"] = settings.SECRET_KEY
    env["HOME"] = str(server_dir())
    env.update(settings.DMARKET_JOB_ENV)
    env.update({
        "SPARK_HOME": str(spark.spark_home()),
        "PYSPARK_PYTHON": settings.DMARKET_EXECUTOR_PYTHON,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "dmarket.settings"),
        "DMARKET_INFERENCE_DIR": str(server_dir()),
        "SPARK_USER": police.INFERENCE_USER,
        "PYTHONUNBUFFERED": "1",
    })
    # What this process was configured with, which may differ from its environment (tests).
    for name in ("DMARKET_SPARK_MASTER_URL", "DMARKET_SPARK_MASTER_UI", "DMARKET_HISTORY_URL",
                 "DMARKET_INFERENCE_IDLE", "DMARKET_EXECUTOR_CORES", "DMARKET_JOBS_DIR",
                 "DMARKET_FILES_DIR"):
        env[name] = str(getattr(settings, name))
    if settings.DMARKET_SPARK_CONF_DIR:
        env["SPARK_CONF_DIR"] = str(settings.DMARKET_SPARK_CONF_DIR)
    if settings.DMARKET_STORAGE == "s3":
        # Models and inputs in an object store: fetched by the server itself, into a cache of
        # its own (it can write nothing of DMARKET_FILES_DIR). It holds the database's
        # credentials already; the store's add nothing it could not reach.
        for name in ("DMARKET_STORAGE", "DMARKET_S3_ENDPOINT", "DMARKET_S3_BUCKET",
                     "DMARKET_S3_ACCESS_KEY", "DMARKET_S3_SECRET_KEY", "DMARKET_S3_REGION"):
            env[name] = str(getattr(settings, name))
        env["DMARKET_FILES_CACHE_DIR"] = str(server_dir() / "cache")
    return env


def server_alive():
    """The driver this keeper started, or one a previous keeper left (by its pid file)."""
    if _child is not None:
        return _child.poll() is None
    try:
        pid = int((server_dir() / "driver.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return False
    return state != b"Z" and any(path.encode() in cmdline for path in server_paths())


def server_paths():
    """The server's module file, and the name it had before (driver.py): a server that a keeper
    of before the rename started is still a server, and no second one is started beside it."""
    return server_module.__file__, str(Path(server_module.__file__).with_name("driver.py"))


def server_profile():
    data = Path(settings.DATA_DIR)
    writable = [server_dir()]
    # SQLite writes its journal beside the database file.
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        writable.append(Path(settings.DATABASES["default"]["NAME"]).parent)
    return sandbox.Profile(name="inference", env=server_env(), chdir=server_dir(),
                           identity="server", readable=[REPO, data, settings.DMARKET_FILES_DIR],
                           writable=writable,
                           max_open_files=settings.DMARKET_SANDBOX_MAX_OPEN_FILES,
                           tmp_mb=settings.DMARKET_SANDBOX_TMP_MB)


def server_start():
    global _child
    directory = server_dir()
    (directory / "exit_code").unlink(missing_ok=True)
    # The police know its application by this file, which its driver writes once registered;
    # until then, by its user (police.INFERENCE_USER).
    (directory / "app_id").unlink(missing_ok=True)
    _child, _, _ = sandbox.start(server_profile(), server_argv(), directory,
                                 directory / "driver.log")
    (directory / "driver.pid").write_text(str(_child.pid))
    log.info("inference server started (pid %s)", _child.pid)


def server_stop(timeout=20):
    """Stop the driver (its jobs stay RUNNING; the next driver resumes them): when the keeper
    stops, and after tests. The driver also stops by itself when idle.

    The wrapper leads the process group; spark-submit's JVM and the Python driver, its child,
    are in it: both must be gone (an orphaned driver would keep the advisory lock), so the
    whole group is waited for, and killed if it outlives the timeout."""
    global _child
    import signal
    import time

    if _child is None and not server_alive():
        return
    pid = _child.pid if _child is not None else int((server_dir() / "driver.pid").read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while group_alive(pid) and time.monotonic() < deadline:
        if _child is not None:
            _child.poll()
        time.sleep(0.2)
    if group_alive(pid):
        log.warning("inference server (group %s) still running after %s s: killing it", pid,
                    timeout)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if _child is not None:
        _child.wait()
    _child = None


def group_alive(pgid):
    """Whether any process of the group is left, zombies of others' children aside."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return bool(group_members(pgid))


def inference_tick():
    """One iteration of the keeper: bill what the jobs ran, finish jobs cancelled while no
    server ran, and start the server when jobs wait for it. Returns 1 if it started one."""
    global _child
    if _child is not None and _child.poll() is not None:
        _child = None
    bill, finish = _guards["bill"], _guards["finish"]
    bill.run(InferenceJob.objects.filter(status=InferenceJob.RUNNING)
             .exclude(pk__in=bill.backed_off()), inference_bill)
    unfinished = InferenceJob.objects.filter(status__in=InferenceJob.UNFINISHED)
    if not unfinished.exists() or server_alive():
        return 0
    finish.run(unfinished.filter(status=InferenceJob.RUNNING, cancel_requested=True)
               .exclude(pk__in=finish.backed_off()),
               lambda ijob: inference_finish(ijob, *stop_outcome(ijob)))
    server_start()
    return 1


def inference_mark_stuck(ijob, error):
    """RowGuard's mark: the job says the keeper fails on it (the operators' log has each
    traceback)."""
    InferenceJob.objects.filter(pk=ijob.pk).update(status_reason=(
        f"the inference keeper fails on this job and retries it: {type(error).__name__}: "
        f"{error}")[:500])


# Each job on its own (dmarket.common.daemon.RowGuard): one that raises is backed off.
_guards = {"bill": RowGuard("inference keeper (billing)", inference_mark_stuck),
           "finish": RowGuard("inference keeper (finishing)", inference_mark_stuck)}
