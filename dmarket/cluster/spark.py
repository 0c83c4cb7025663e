"""What dmarket says to Spark: spark-submit's argument list, and the JSON of the standalone
master and the history server."""

import math
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import requests
from django.conf import settings

from dmarket.files.services import job_input_urls

APP_ID_LINE = re.compile(rb"Connected to Spark cluster with app ID (app-[\w-]+)")
YARN_APP_ID_LINE = re.compile(rb"Submitted application (application_[\w-]+)")
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
    conf = {
        "spark.cores.max": job.cores,
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": settings.DMARKET_EVENT_LOG_DIR.as_uri(),
        # Billing reads every executor's lifetime from the history; keep them all.
        "spark.ui.retainedDeadExecutors": 100000,
        "spark.dmarket.job": job.pk,
        "spark.driver.host": settings.DMARKET_DRIVER_HOST,
        "spark.executorEnv.DMARKET_JOB_ID": job.pk,
        "spark.executorEnv.PYSPARK_PYTHON": settings.DMARKET_EXECUTOR_PYTHON,
    }
    for name, value in settings.DMARKET_JOB_ENV.items():
        conf[f"spark.executorEnv.{name}"] = value
    argv = [str(spark_home() / "bin" / "spark-submit"),
            "--master", settings.DMARKET_SPARK_MASTER_URL,
            "--deploy-mode", "client",
            "--name", f"{job.name} [{job.tag}]",
            "--executor-cores", str(executor_cores),
            "--executor-memory", f"{job.executor_memory_mb}m"]
    if is_yarn():
        # YARN has no spark.cores.max: ask for as many executors as make the cores.
        argv += ["--num-executors", str(math.ceil(job.cores / executor_cores))]
    for name, value in conf.items():
        argv += ["--conf", f"{name}={value}"]
    if py_files:
        argv += ["--py-files", ",".join(py_files)]
    if jars:
        argv += ["--jars", ",".join(jars)]
    if files:
        argv += ["--files", ",".join(files)]
    if archives:
        argv += ["--archives", ",".join(archives)]
    return argv + [url(job.entry_file, "entry_file")] + list(job.app_params)


def driver_env(job):
    """The driver's environment: the server's own, less its secrets, plus the job's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DATABASE_URL", "DJANGO_SUPERUSER_PASSWORD")}
    env.update(settings.DMARKET_JOB_ENV)
    env.update({
        "SPARK_HOME": str(spark_home()),
        "PYSPARK_PYTHON": settings.DMARKET_EXECUTOR_PYTHON,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "DMARKET_JOB_ID": str(job.pk),
        "DMARKET_OUTPUT_DIR": str(job.output_dir),
        "PYTHONUNBUFFERED": "1",
    })
    if settings.DMARKET_SPARK_CONF_DIR:
        env["SPARK_CONF_DIR"] = str(settings.DMARKET_SPARK_CONF_DIR)
    return env


def app_id_from_log(path):
    """The application id the driver printed when it connected to the cluster, if it has."""
    try:
        with open(path, "rb") as f:
            head = f.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return ""
    match = APP_ID_LINE.search(head) or YARN_APP_ID_LINE.search(head)
    return match.group(1).decode() if match else ""


def _get(url):
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT)
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


def master_kill_app(app_id):
    """Ask the standalone master to kill the application (and so its executors). Best effort:
    the launcher also signals the driver's process group, and the master notices that."""
    ui = settings.DMARKET_SPARK_MASTER_UI.rstrip("/")
    try:
        # Spark 4.3 wants the per-UI CSRF token that its own kill form carries.
        page = requests.get(ui + "/", timeout=HTTP_TIMEOUT).text
        token = CSRF_TOKEN.search(page)
        data = {"id": app_id, "terminate": "true"}
        if token:
            data["csrfToken"] = token.group(1)
        requests.post(ui + "/app/kill/", data=data, timeout=HTTP_TIMEOUT,
                      allow_redirects=False)
    except requests.RequestException:
        pass


def history_app(app_id):
    return _get(f"{settings.DMARKET_HISTORY_URL.rstrip('/')}/api/v1/applications/{app_id}")


def history_executors(app_id):
    return _get(f"{settings.DMARKET_HISTORY_URL.rstrip('/')}/api/v1/applications/{app_id}"
                "/allexecutors")


def history_of(app_id):
    """(application, its executors) from the history server; (None, None) if it has no such
    application yet. Raises SparkUnavailable."""
    app = history_app(app_id)
    return (app, history_executors(app_id)) if app else (None, None)


def parse_time(text):
    """The history server's times: '2026-11-22T08:25:30.398GMT'."""
    if not text:
        return None
    return datetime.strptime(text.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc)


LOG_HEADER = re.compile(r"^==== Bytes (\d+)-(\d+) of (\d+) of .*? ====\n")


def worker_log(log_url, offset, length):
    """Part of an executor's log, from the worker that ran it: (text, start, end, total).

    The worker's /log/ endpoint serves the file in its work directory; the URL is the one the
    history server gives (…/logPage/?appId=…&executorId=…&logType=…)."""
    parts = log_url.split("/logPage/?", 1)
    if len(parts) != 2:
        raise SparkUnavailable(f"not a worker log URL: {log_url}")
    url = f"{parts[0]}/log/?{parts[1]}&offset={offset}&byteLength={length}"
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
