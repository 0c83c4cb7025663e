"""What dmarket says to Spark: spark-submit's argument list, and the JSON of the standalone
master and the history server."""

import math
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
from django.conf import settings
from django.urls import reverse

from dmarket.jobs.conf import allowed as conf_allowed
from dmarket.jobs.inputs import job_input_urls
from dmarket.jobs.uris import entry_is_jar

# Spark's event log names: the application id, a codec, and .inprogress while it runs.
EVENT_LOG = re.compile(r"^((?:app|application)[-_][0-9]+[-_][0-9]+)(\.[a-z0-9]+)?(\.inprogress)?$")
HTTP_TIMEOUT = 3


class SparkUnavailable(Exception):
    pass


def spark_home():
    if settings.DMARKET_SPARK_HOME:
        return Path(settings.DMARKET_SPARK_HOME)
    import pyspark

    return Path(pyspark.__file__).parent


def is_yarn():
    return settings.DMARKET_SPARK_MASTER_URL.startswith("yarn")


def properties_args(path):
    """spark-submit's options for the properties file `security.write_properties` made (the
    cluster's secret and security settings), keeping the operator's spark-defaults.conf."""
    args = ["--properties-file", str(path)]
    if settings.DMARKET_SPARK_CONF_DIR:
        args.append("--load-spark-defaults")
    return args


def properties_path(job):
    return job.work_dir / "spark.conf"


def gpu_amount(value):
    """A task's GPUs as Spark reads them: "1", or a share in full (1/6 as 0.16666666666666666,
    which Spark's floor(1/x) makes 6 tasks a GPU; "0.166667" would make 5)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def submit_argv(job):
    """spark-submit's argv for the job: every user value is one list item, never a shell word.

    dmarket:// files become URLs of the central server with the job's credential, which
    spark-submit (client mode: the entry file and libs) and every executor fetch."""
    url = job_input_urls(job)
    executor_cores = min(job.cores, settings.DMARKET_EXECUTOR_CORES)
    libs = [url(uri, "libs") for uri in job.libs]
    py_files = [uri for uri in libs if not uri.lower().endswith(".jar")]
    jars = [uri for uri in libs if uri.lower().endswith(".jar")]
    archives = [url(uri, "archives") for uri in job.archives]
    files = [url(uri, "files") for uri in job.files]
    runtime = job_runtime(job, url)
    archives += runtime["archives"]
    files += runtime["files"]
    conf = {
        "spark.cores.max": job.cores,
        "spark.eventLog.enabled": "true",
        # Into the job's own directory, which only its sandbox writes: the launcher links the
        # log of its verified application into the history server's directory.
        "spark.eventLog.dir": job.events_dir.as_uri(),
        "spark.eventLog.compress": "false",
        # One file (Spark 4 rolls into a directory by default), which the launcher can link.
        "spark.eventLog.rolling.enabled": "false",
        # The master shows this as the application's user: with the event log in the job's
        # own directory, it is how the launcher knows the application is the job's.
        "spark.driver.extraJavaOptions": f"-Duser.name={job.tag}",
        # No driver UI: nothing of the market reads it, and every job's sandbox could reach
        # another's (its properties carry file URLs; its kill buttons, other jobs' stages).
        "spark.ui.enabled": "false",
        # Billing reads every executor's lifetime from the history; keep them all.
        "spark.ui.retainedDeadExecutors": 100000,
        "spark.dmarket.job": job.pk,
        "spark.driver.host": settings.DMARKET_DRIVER_HOST,
        "spark.executorEnv.DMARKET_JOB_ID": job.pk,
        "spark.executorEnv.PYSPARK_PYTHON": settings.DMARKET_EXECUTOR_PYTHON,
    }
    if job.resource and job.gpus_per_executor:
        # Spark's own resource scheduling: executors only on workers with that many free.
        conf[f"spark.executor.resource.{job.resource}.amount"] = job.gpus_per_executor
        conf[f"spark.task.resource.{job.resource}.amount"] = gpu_amount(job.gpus_per_task)
    for name, value in settings.DMARKET_JOB_ENV.items():
        conf[f"spark.executorEnv.{name}"] = value
    if runtime["python_path"]:
        conf["spark.executorEnv.PYTHONPATH"] = runtime["python_path"]
    argv = [str(spark_home() / "bin" / "spark-submit"),
            "--master", settings.DMARKET_SPARK_MASTER_URL,
            "--deploy-mode", "client",
            *properties_args(properties_path(job)),
            "--name", f"{job.name} [{job.tag}]",
            "--executor-cores", str(executor_cores),
            "--executor-memory", f"{job.executor_memory_mb}m",
            "--driver-memory", f"{job.driver_memory}m"]
    if is_yarn():
        # YARN has no spark.cores.max: ask for as many executors as make the cores.
        argv += ["--num-executors", str(math.ceil(job.cores / executor_cores))]
    # The job's own properties first, the market's over them: each key reaches spark-submit
    # once, with the market's value, whatever the order spark-submit reads repeated keys in.
    # The allowlist again: a job queued before a change of it gets what it allows now.
    user_conf = {k: v for k, v in (job.conf or {}).items() if conf_allowed(k)}
    for name, value in {**user_conf, **conf}.items():
        argv += ["--conf", f"{name}={value}"]
    if py_files:
        argv += ["--py-files", ",".join(py_files)]
    if jars:
        argv += ["--jars", ",".join(jars)]
    if files:
        argv += ["--files", ",".join(files)]
    if archives:
        argv += ["--archives", ",".join(archives)]
    if job.main_class and entry_is_jar(job.entry_file):
        argv += ["--class", job.main_class]
    return argv + [url(job.entry_file, "entry_file")] + list(job.app_params)


def job_runtime(job, url):
    """What a job's environment and working directory add for its executors: archives,
    files, and their PYTHONPATH (relative to each executor's directory, where Spark unpacks
    the archives)."""
    from dmarket.envs.services import ALIAS, SITE, WORKDIR_ALIAS, executor_site_file

    out = {"archives": [], "files": [], "python_path": ""}
    path = []
    if job.working_dir:
        out["archives"].append(f"{url(job.working_dir, 'working_dir')}#{WORKDIR_ALIAS}")
        out["files"].append(str(executor_site_file()))
        path.append(".")
    if job.environment_id:
        base_url = settings.DMARKET_PUBLIC_URL.rstrip("/")
        archive = reverse("job-environment", args=[job.pk, job.files_token,
                                                   f"env-{job.environment.key[:16]}.tar.gz"])
        out["archives"].append(f"{base_url}{archive}#{ALIAS}")
    elif job.env:
        out["archives"].append(f"{url(job.env, 'env')}#{ALIAS}")
    if job.environment_id or job.env:
        path.append(f"{ALIAS}/{SITE}")
    out["python_path"] = ":".join(path)
    return out


def driver_env(job, site=None):
    """The driver's environment: an allowlist (dmarket.cluster.sandbox.base_env), the job's
    settings, and nothing else of the server's."""
    from .sandbox import base_env

    env = base_env()
    env.update(settings.DMARKET_JOB_ENV)
    env.update({
        "HOME": str(job.home_dir),
        "SPARK_HOME": str(spark_home()),
        "SPARK_USER": job.tag,
        "PYSPARK_PYTHON": settings.DMARKET_EXECUTOR_PYTHON,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "DMARKET_JOB_ID": str(job.pk),
        "DMARKET_OUTPUT_DIR": str(job.output_dir),
    })
    # Its working directory (unpacked in its home, its current directory) and environment
    # (`site`, unpacked on this host) come first on its sys.path.
    python_path = ([str(job.home_dir)] if job.working_dir else []) + ([str(site)] if site else [])
    if python_path:
        env["PYTHONPATH"] = ":".join(python_path)
    if settings.DMARKET_SPARK_CONF_DIR:
        env["SPARK_CONF_DIR"] = str(settings.DMARKET_SPARK_CONF_DIR)
    return env


def event_logs(job):
    """{application id: its event log's path} in the job's own event directory, the final log
    preferred to an .inprogress one."""
    found = {}
    try:
        entries = list(os.scandir(job.events_dir))
    except FileNotFoundError:
        return found
    for entry in entries:
        match = EVENT_LOG.match(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            if match.group(1) not in found or not match.group(3):
                found[match.group(1)] = Path(entry.path)
    return found


def job_apps(job, state):
    """The master's applications that are this job's, oldest first: each shows the job's tag
    as its user and has its event log in the job's own directory. A job cannot make another's
    application show its tag, nor write into another's directory; what it prints counts for
    nothing. Also returns the applications showing its tag without such a log."""
    apps = (state or {}).get("activeapps", []) + (state or {}).get("completedapps", [])
    logs = event_logs(job)
    tagged = sorted((a for a in apps if a.get("user") == job.tag),
                    key=lambda a: (a.get("starttime", 0), a.get("id", "")))
    return ([a for a in tagged if a.get("id") in logs],
            [a for a in tagged if a.get("id") not in logs])


def active_app_ids(state):
    return {a.get("id") for a in (state or {}).get("activeapps", [])}


def _get(url, timeout=HTTP_TIMEOUT):
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as e:
        raise SparkUnavailable(f"{url}: {e}") from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise SparkUnavailable(f"{url}: HTTP {response.status_code}")
    return response.json()


def master_state():
    """The standalone master's /json/: workers, activeapps, completedapps."""
    return _get(settings.DMARKET_SPARK_MASTER_UI.rstrip("/") + "/json/")


CSRF_TOKEN = re.compile(r'name="csrfToken" value="([0-9a-fA-F]+)"')


def _master_kill(path, item_id):
    ui = settings.DMARKET_SPARK_MASTER_UI.rstrip("/")
    try:
        # Spark 4.3 wants the per-UI CSRF token that its own kill forms carry.
        page = requests.get(ui + "/", timeout=HTTP_TIMEOUT).text
        token = CSRF_TOKEN.search(page)
        data = {"id": item_id, "terminate": "true"}
        if token:
            data["csrfToken"] = token.group(1)
        requests.post(ui + path, data=data, timeout=HTTP_TIMEOUT, allow_redirects=False)
    except requests.RequestException:
        pass


def master_kill_driver(driver_id):
    """Ask the standalone master to kill a cluster-mode driver. Best effort."""
    _master_kill("/driver/kill/", driver_id)


def master_kill_app(app_id):
    """Ask the standalone master to kill the application (and so its executors). Best effort:
    the launcher also signals the driver's process group, and the master notices that."""
    _master_kill("/app/kill/", app_id)


def history_app(app_id, timeout=HTTP_TIMEOUT):
    return _get(f"{settings.DMARKET_HISTORY_URL.rstrip('/')}/api/v1/applications/{app_id}",
                timeout)


def history_executors(app_id, timeout=HTTP_TIMEOUT):
    return _get(f"{settings.DMARKET_HISTORY_URL.rstrip('/')}/api/v1/applications/{app_id}"
                "/allexecutors", timeout)


def history_of(app_id, deadline=None):
    """(application, its executors) from the history server; (None, None) if it has no such
    application yet. Raises SparkUnavailable.

    With a deadline (a time.monotonic() value), each of its two requests waits at most until
    then (and never more than HTTP_TIMEOUT to connect or between bytes); past it, none is made.
    """
    def timeout():
        if deadline is None:
            return HTTP_TIMEOUT
        left = deadline - time.monotonic()
        if left <= 0:
            raise SparkUnavailable(f"application {app_id}: no time left for the history server")
        return min(HTTP_TIMEOUT, left)

    app = history_app(app_id, timeout=timeout())
    return (app, history_executors(app_id, timeout=timeout())) if app else (None, None)


def parse_time(text):
    """The history server's times: '2026-11-22T08:25:30.398GMT'."""
    if not text:
        return None
    return datetime.strptime(text.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc)


LOG_HEADER = re.compile(r"^==== Bytes (\d+)-(\d+) of (\d+) of .*? ====\n")


def worker_log(log_url, offset, length, workers, app_id, executor_id):
    """Part of an executor's log, from the worker that ran it: (text, start, end, total).

    The worker's /log/ endpoint serves the file in its work directory. The history server's
    URL (…/logPage/?appId=…&executorId=…&logType=…) comes from the event log, which the job's
    own driver writes: only its worker's address and log type are taken from it, the worker
    must be one the master lists, and the application and executor are the caller's."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    parts = urlsplit(log_url)
    known = {urlsplit(w.get("webuiaddress", "")).netloc for w in workers or []}
    kind = parse_qs(parts.query).get("logType", [""])[0]
    if (parts.scheme not in ("http", "https") or parts.netloc not in known
            or not parts.path.endswith("/logPage/") or kind not in ("stdout", "stderr")):
        raise SparkUnavailable(f"not the log URL of a worker of the cluster: {log_url}")
    query = urlencode({"appId": app_id, "executorId": executor_id, "logType": kind,
                       "offset": offset, "byteLength": length})
    url = f"{parts.scheme}://{parts.netloc}/log/?{query}"
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT)
    except requests.RequestException as e:
        raise SparkUnavailable(f"the worker does not answer: {e}") from None
    if response.status_code != 200:
        raise SparkUnavailable(f"the worker answered HTTP {response.status_code}")
    text = response.text
    header = LOG_HEADER.match(text)
    if not header:
        return text, offset, offset + len(text.encode()), None
    start, end, total = (int(g) for g in header.groups())
    return text[header.end():], start, end, total
