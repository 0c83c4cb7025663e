"""Settings come from the environment; see doc/configuration.md for the full list."""

import os
import secrets
import socket
import sys
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("DMARKET_DATA_DIR", BASE_DIR / "data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key():
    # A key generated once per installation and kept beside the data, so that tokens and
    # sessions survive restarts without any secret living in the repository.
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files, served from static/ (no CDN): /api/docs/ works offline.
    "drf_spectacular_sidecar",
    "dmarket.accounts",
    "dmarket.credits",
    "dmarket.machines",
    "dmarket.jobs",
    "dmarket.cluster",
    "dmarket.files",
    "dmarket.inference",
    "dmarket.envs",
    "dmarket.web",
]

MIDDLEWARE = [
    "dmarket.common.middleware.RequestIdMiddleware",
    "dmarket.common.middleware.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dmarket.urls"
WSGI_APPLICATION = "dmarket.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "dmarket" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dmarket.web.context.nav",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'dmarket.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks: take the write lock when a transaction begins, so that two
    # transactions cannot both read a balance and then both spend it.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# The dashboard (dmarket/web): signed-in pages send others to the sign-in page.
LOGIN_URL = "web:signin"
LOGIN_REDIRECT_URL = "web:overview"
# The session cookie is not readable by scripts; the CSRF cookie must be (the pages' fetch
# calls send it back as X-CSRFToken). Both Secure when the server is reached over HTTPS.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DMARKET_SECURE_COOKIES", False)
SESSION_COOKIE_AGE = 14 * 24 * 3600

REST_FRAMEWORK = {
    # DRF's `Authorization: Token <key>`, against keys stored as digests (dmarket/accounts).
    # Also the dashboard's session (dmarket/web): its pages call this API from the browser,
    # with Django's CSRF check on every unsafe method (DRF's SessionAuthentication). The token
    # stays first, so a request with neither is still answered 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": ["dmarket.accounts.authentication.ApiTokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    # A machine agent's token only on its machine's routes (dmarket/accounts/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["dmarket.accounts.permissions.IsUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["dmarket.common.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "dmarket.common.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dmarket.common.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The throttles' client address: REMOTE_ADDR when 0 (a client's own X-Forwarded-For
    # would otherwise buy it a fresh allowance on every request); behind N proxies of the
    # operator's, the address the Nth from the end saw.
    "NUM_PROXIES": int(os.environ.get("DMARKET_NUM_PROXIES", "0")),
}

# Django's default (memory of each process) for anything that may be lost, and a table in the
# database for the throttles' request histories: gunicorn runs several workers, and limits
# kept per process would let a client through that many times; the database is already
# shared by every process (and every host of the server), so no new service is needed. The
# table is made by migrate (dmarket/accounts/apps.py runs createcachetable after it).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "dmarket_throttle_cache",
        "OPTIONS": {"MAX_ENTRIES": 10_000},
    },
}
# Rates of the sign-up and login throttles (dmarket/accounts/throttles.py), as DRF writes
# them: "<requests>/<s|min|hour|day>"; past one, 429 with Retry-After. Empty: no limit.
# Sign-ups per client address; login attempts per client address, and per username from any
# address (slow password guessing from many addresses), successful ones included.
DMARKET_REGISTER_RATE = os.environ.get("DMARKET_REGISTER_RATE", "10/hour")
DMARKET_LOGIN_RATE = os.environ.get("DMARKET_LOGIN_RATE", "10/min")
DMARKET_LOGIN_USERNAME_RATE = os.environ.get("DMARKET_LOGIN_USERNAME_RATE", "20/hour")

SPECTACULAR_SETTINGS = {
    "TITLE": "dmarket API",
    "DESCRIPTION": "A compute market for machine learning on Apache Spark.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "dmarket.common.schema.add_error_responses"],
}

# Every line with its time, level, logger and request id ("-" outside a request; daemons'
# lines name their job themselves: "job 12: ...").
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "dmarket.common.middleware.RequestIdFilter"}},
    "formatters": {"plain": {
        "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("DMARKET_LOG_LEVEL", "INFO")},
}

# --- The market -----------------------------------------------------------------------------
# Credits are Decimal with 6 places (micro-credits); see dmarket/credits/models.py.
DMARKET_SIGNUP_GRANT = Decimal(os.environ.get("DMARKET_SIGNUP_GRANT", "100"))
DMARKET_DEFAULT_JOB_CAP = Decimal(os.environ.get("DMARKET_DEFAULT_JOB_CAP", "10"))
# Price per hour of one unit of each resource an executor holds: "core" (a CPU core) and each
# accelerator Spark schedules ("gpu"). A job pays each executor's cores x time at the core price
# plus its GPUs x time at the GPU price, times the premium rate, all fixed at submission.
# "cpu=" is read as "core=" (the setting's old name: a core-hour on a CPU machine).
DMARKET_PRICES = {
    ("core" if name.strip() == "cpu" else name.strip()): Decimal(price)
    for name, price in (
        item.split("=", 1)
        for item in env_list("DMARKET_PRICES", ["core=1", "gpu=4"])
    )
}
DMARKET_PRICES.setdefault("core", Decimal("1"))
# Machine types are "cpu" (cores only) and each accelerator with a price, which names the
# Spark resource (spark.worker.resource.<type>.*) its machines offer and its jobs ask for.
DMARKET_MAX_GPUS = int(os.environ.get("DMARKET_MAX_GPUS", "64"))
DMARKET_PREMIUM_CAP = Decimal(os.environ.get("DMARKET_PREMIUM_CAP", "2"))
DMARKET_MAX_JOB_CORES = int(os.environ.get("DMARKET_MAX_JOB_CORES", "1024"))
DMARKET_MAX_EXECUTOR_MEMORY_MB = int(os.environ.get("DMARKET_MAX_EXECUTOR_MEMORY_MB", "1048576"))
# The failure detector of shared machines (the seed's ping interval and timeout).
DMARKET_HEARTBEAT_INTERVAL = int(os.environ.get("DMARKET_HEARTBEAT_INTERVAL", "10"))
DMARKET_HEARTBEAT_TIMEOUT = int(os.environ.get("DMARKET_HEARTBEAT_TIMEOUT", "30"))
# How often the monitor looks (the seed's ping interval), and after how long offline a machine
# is removed (the seed's clean-up time; 0: never).
DMARKET_MONITOR_POLL = float(os.environ.get("DMARKET_MONITOR_POLL", "5"))
DMARKET_MACHINE_CLEANUP = int(os.environ.get("DMARKET_MACHINE_CLEANUP", "0"))
# Per-job directories (driver log, results) live here.
DMARKET_JOBS_DIR = Path(os.environ.get("DMARKET_JOBS_DIR", DATA_DIR / "jobs")).resolve()
# Spark (the launcher and the machines' agents read these).
DMARKET_SPARK_MASTER_URL = os.environ.get("DMARKET_SPARK_MASTER_URL", "spark://127.0.0.1:7077")
DMARKET_SPARK_MASTER_UI = os.environ.get("DMARKET_SPARK_MASTER_UI", "http://127.0.0.1:8080")
DMARKET_HISTORY_URL = os.environ.get("DMARKET_HISTORY_URL", "http://127.0.0.1:18080")
# Empty: the bin/ of the installed pyspark package.
DMARKET_SPARK_HOME = os.environ.get("DMARKET_SPARK_HOME", "")
DMARKET_SPARK_CONF_DIR = os.environ.get("DMARKET_SPARK_CONF_DIR", "")
# The closed cluster (doc/security.md): Spark's shared-secret authentication on the master,
# the workers and every driver, with a secret this server generates and keeps in its database
# (DMARKET_SPARK_SECRET sets it instead, e.g. from a vault, for several central servers);
# RPC encryption (AES-GCM between every JVM) and the encryption of what executors spill and
# shuffle to local disks, each on unless turned off here. A local[*] master needs none.
DMARKET_SPARK_AUTHENTICATE = os.environ.get("DMARKET_SPARK_AUTHENTICATE", "on") != "off"
DMARKET_SPARK_SECRET = os.environ.get("DMARKET_SPARK_SECRET", "")
DMARKET_SPARK_RPC_ENCRYPTION = os.environ.get("DMARKET_SPARK_RPC_ENCRYPTION", "on") != "off"
DMARKET_SPARK_IO_ENCRYPTION = os.environ.get("DMARKET_SPARK_IO_ENCRYPTION", "on") != "off"
DMARKET_EVENT_LOG_DIR = Path(
    os.environ.get("DMARKET_EVENT_LOG_DIR", DATA_DIR / "spark-events")).resolve()
# Where executors reach the drivers the launcher runs (client mode).
DMARKET_DRIVER_HOST = os.environ.get("DMARKET_DRIVER_HOST", "127.0.0.1")
# Cores of each executor; a job of N cores gets about N / this many executors.
DMARKET_EXECUTOR_CORES = int(os.environ.get("DMARKET_EXECUTOR_CORES", "1"))
DMARKET_EXECUTOR_PYTHON = os.environ.get("DMARKET_EXECUTOR_PYTHON", sys.executable)
# Extra environment for every job's driver and executors. Keras 2 by default: TensorFlow
# jobs under TensorFlowOnSpark need it (Keras 3's fit fails under MultiWorkerMirroredStrategy).
DMARKET_JOB_ENV = dict(
    item.split("=", 1) for item in env_list("DMARKET_JOB_ENV", ["TF_USE_LEGACY_KERAS=1"])
    if "=" in item)
# The launcher: how many drivers it runs at once (each is a JVM and a Python process on its
# host), how often it looks for work, and the name it claims jobs under.
DMARKET_DRIVER_SLOTS = int(os.environ.get("DMARKET_DRIVER_SLOTS", "2"))
DMARKET_LAUNCHER_POLL = float(os.environ.get("DMARKET_LAUNCHER_POLL", "0.2"))
DMARKET_LAUNCHER_ID = os.environ.get("DMARKET_LAUNCHER_ID", socket.gethostname())
# A job that makes a daemon's pass raise is backed off (up to this many seconds) while the
# others go on, and marked (its status_reason says so) after this many failures in a row.
DMARKET_ROW_BACKOFF_MAX = float(os.environ.get("DMARKET_ROW_BACKOFF_MAX", "60"))
DMARKET_ROW_POISON_AFTER = int(os.environ.get("DMARKET_ROW_POISON_AFTER", "5"))
DMARKET_CANCEL_GRACE = float(os.environ.get("DMARKET_CANCEL_GRACE", "10"))
# The billing poller: how often, and how long after a driver's exit it waits for the history
# server to show the application complete before billing executors up to the exit.
DMARKET_BILLING_POLL = float(os.environ.get("DMARKET_BILLING_POLL", "2"))
DMARKET_SETTLE_GRACE = float(os.environ.get("DMARKET_SETTLE_GRACE", "20"))
# Metered usage is posted to the ledger per job x machine at most once per this many seconds,
# and at the job's end (dmarket.credits.services.usage_post).
DMARKET_BILLING_INTERVAL = float(os.environ.get("DMARKET_BILLING_INTERVAL", "60"))
# The file store: every version of every user's files, on this server's disk.
DMARKET_FILES_DIR = Path(os.environ.get("DMARKET_FILES_DIR", DATA_DIR / "files")).resolve()
DMARKET_STORAGE_QUOTA_MB = int(os.environ.get("DMARKET_STORAGE_QUOTA_MB", "10240"))
# Where the bytes live (doc/files.md): "local" (DMARKET_FILES_DIR) or "s3", any S3-compatible
# store (AWS S3, MinIO, Ceph, SeaweedFS: scripts/start_storage.sh writes these for its own).
# Names, versions, sizes and SHA-256 stay in the database either way.
DMARKET_STORAGE = os.environ.get("DMARKET_STORAGE", "local").strip().lower()
if DMARKET_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"DMARKET_STORAGE={DMARKET_STORAGE!r}: give local or s3.")
DMARKET_S3_ENDPOINT = os.environ.get("DMARKET_S3_ENDPOINT", "")
# The endpoint that executors reach (a worker in its own network may see the store at another
# address); the server's own by default.
DMARKET_S3_PUBLIC_ENDPOINT = os.environ.get("DMARKET_S3_PUBLIC_ENDPOINT", DMARKET_S3_ENDPOINT)
DMARKET_S3_BUCKET = os.environ.get("DMARKET_S3_BUCKET", "dmarket")
DMARKET_S3_ACCESS_KEY = os.environ.get("DMARKET_S3_ACCESS_KEY", "")
DMARKET_S3_SECRET_KEY = os.environ.get("DMARKET_S3_SECRET_KEY", "")
DMARKET_S3_REGION = os.environ.get("DMARKET_S3_REGION", "us-east-1")
# How long the store's signed URL that a job's credential is exchanged for stays valid: a
# leaked one opens one file for at most this long, and only after the job's credential did.
DMARKET_S3_URL_SECONDS = int(os.environ.get("DMARKET_S3_URL_SECONDS", "300"))
# How long an upload waits for the store's answer to each part before it is refused (503).
DMARKET_S3_WRITE_TIMEOUT = float(os.environ.get("DMARKET_S3_WRITE_TIMEOUT", "15"))
# SeaweedFS's master and filer, when the store is SeaweedFS: `dmarket files where` asks them
# which volume servers hold a file's copies.
DMARKET_SEAWEEDFS_MASTER = os.environ.get("DMARKET_SEAWEEDFS_MASTER", "")
DMARKET_SEAWEEDFS_FILER = os.environ.get("DMARKET_SEAWEEDFS_FILER", "")
# The store's servers that answer without authentication (SeaweedFS's master, filer and volume
# servers, as host:port): no sandboxed job may connect to their ports.
DMARKET_STORAGE_INTERNAL = env_list("DMARKET_STORAGE_INTERNAL", [])
# Where copies fetched from an object store are kept for what needs a path (environments,
# working directories, inference models and inputs); default DMARKET_FILES_DIR/cache.
DMARKET_FILES_CACHE_DIR = os.environ.get("DMARKET_FILES_CACHE_DIR", "")
# Job environments (doc/spark.md): built by the launcher with `pip install --target` in a
# sandbox, from wheels only (no package's own code runs at build time), one per distinct set of
# requirements, packed here. The pip options (an index, --find-links DIR --no-index...) and the
# limits of a build.
DMARKET_ENVS_DIR = Path(os.environ.get("DMARKET_ENVS_DIR", DATA_DIR / "envs")).resolve()
DMARKET_ENV_PIP_ARGS = env_list("DMARKET_ENV_PIP_ARGS", ["--only-binary=:all:"])
DMARKET_ENV_BUILD_TIMEOUT = int(os.environ.get("DMARKET_ENV_BUILD_TIMEOUT", "900"))
DMARKET_ENV_BUILD_MEMORY_MB = int(os.environ.get("DMARKET_ENV_BUILD_MEMORY_MB", "2048"))
DMARKET_ENV_MAX_MB = int(os.environ.get("DMARKET_ENV_MAX_MB", "4096"))
DMARKET_ENV_MAX_REQUIREMENTS = int(os.environ.get("DMARKET_ENV_MAX_REQUIREMENTS", "200"))
DMARKET_ENV_MAX_BUILDING_PER_USER = int(
    os.environ.get("DMARKET_ENV_MAX_BUILDING_PER_USER", "3"))
# A job's --working-dir: the largest packed size the client sends, and unpacked.
DMARKET_WORKDIR_MAX_MB = int(os.environ.get("DMARKET_WORKDIR_MAX_MB", "100"))


def _public_url():
    # What workers fetch jobs' files from: the web server's own address unless it listens on
    # every interface, where only the operator knows which name the workers can reach.
    bind = os.environ.get("DMARKET_BIND", "127.0.0.1")
    host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{os.environ.get('DMARKET_PORT', '8000')}"


DMARKET_PUBLIC_URL = os.environ.get("DMARKET_PUBLIC_URL", "").rstrip("/") or _public_url()
# The inference server (dmarket/inference): one Spark application serving every inference
# job, started by `manage.py inference --loop` while there are some, stopping itself after
# DMARKET_INFERENCE_IDLE seconds without one. Its cores (0: as many as the cluster gives).
DMARKET_INFERENCE_DIR = Path(
    os.environ.get("DMARKET_INFERENCE_DIR", DATA_DIR / "inference")).resolve()
DMARKET_INFERENCE_CORES = int(os.environ.get("DMARKET_INFERENCE_CORES", "0"))
DMARKET_INFERENCE_EXECUTOR_MEMORY_MB = int(
    os.environ.get("DMARKET_INFERENCE_EXECUTOR_MEMORY_MB", "1024"))
# GPUs each of the inference server's executors holds (0: it runs on cores only, anywhere).
# Its executors land only on machines with that many free; their batches bill GPU-time too.
DMARKET_INFERENCE_GPUS = int(os.environ.get("DMARKET_INFERENCE_GPUS", "0"))
DMARKET_INFERENCE_IDLE = float(os.environ.get("DMARKET_INFERENCE_IDLE", "60"))
DMARKET_INFERENCE_POLL = float(os.environ.get("DMARKET_INFERENCE_POLL", "1"))
# The sandbox every driver runs in (dmarket/cluster/sandbox.py, doc/security.md). "auto":
# bubblewrap, as the system user DMARKET_SANDBOX_USER when the server runs as root, in a user
# namespace otherwise; "off" (an operator's explicit choice): drivers run unsandboxed. Where
# no sandbox can be made, the launcher starts no driver.
DMARKET_SANDBOX = os.environ.get("DMARKET_SANDBOX", "auto")
DMARKET_SANDBOX_USER = os.environ.get("DMARKET_SANDBOX_USER", "dmarket-job")
# The user the agent runs a machine's worker as (dmarket_client.worker_sandbox): where one
# runs on a launcher's host, its executors are refused the same ports as the drivers.
DMARKET_WORKER_USER = os.environ.get("DMARKET_WORKER_USER", "dmarket-worker")
# Limits of each driver's sandbox: its memory is the job's driver memory plus this overhead
# (the Python driver beside the JVM's heap), processes and threads, open files per process,
# the private /tmp (in memory), and the job's results and log together.
DMARKET_DRIVER_MEMORY_MB = int(os.environ.get("DMARKET_DRIVER_MEMORY_MB", "1024"))
DMARKET_MAX_DRIVER_MEMORY_MB = int(os.environ.get("DMARKET_MAX_DRIVER_MEMORY_MB", "8192"))
DMARKET_DRIVER_MEMORY_OVERHEAD_MB = int(
    os.environ.get("DMARKET_DRIVER_MEMORY_OVERHEAD_MB", "1536"))
DMARKET_SANDBOX_MAX_PROCS = int(os.environ.get("DMARKET_SANDBOX_MAX_PROCS", "2048"))
DMARKET_SANDBOX_MAX_OPEN_FILES = int(os.environ.get("DMARKET_SANDBOX_MAX_OPEN_FILES", "4096"))
DMARKET_SANDBOX_TMP_MB = int(os.environ.get("DMARKET_SANDBOX_TMP_MB", "1024"))
DMARKET_JOB_DISK_QUOTA_MB = int(os.environ.get("DMARKET_JOB_DISK_QUOTA_MB", "2048"))
DMARKET_JOB_MAX_FILES = int(os.environ.get("DMARKET_JOB_MAX_FILES", "100000"))
# How long one launcher pass spends recording (and copying into the store) finished jobs'
# results; a job of many files takes several passes.
DMARKET_RESULTS_PASS_SECONDS = float(os.environ.get("DMARKET_RESULTS_PASS_SECONDS", "5"))
# The launchers police the cluster: every DMARKET_POLICE_INTERVAL seconds they kill each
# application older than DMARKET_APP_GRACE seconds that is no running job's verified one nor
# the inference server's (a starting job's own gets DMARKET_APP_VERIFY_GRACE to show its
# event log), record it (admin: Policed applications) and fail the job whose sandbox runs
# its driver. An application is killed at most grace + interval + one master request after
# it registered.
DMARKET_POLICE_INTERVAL = float(os.environ.get("DMARKET_POLICE_INTERVAL", "1"))
DMARKET_APP_GRACE = float(os.environ.get("DMARKET_APP_GRACE", "2"))
DMARKET_APP_VERIFY_GRACE = float(os.environ.get("DMARKET_APP_VERIFY_GRACE", "10"))
# Wall-clock limit of a job's run, in seconds: the default a job gets and the most it may ask.
DMARKET_JOB_MAX_RUNTIME = int(os.environ.get("DMARKET_JOB_MAX_RUNTIME", "21600"))
DMARKET_MAX_JOB_RUNTIME = int(os.environ.get("DMARKET_MAX_JOB_RUNTIME", "604800"))
# More read-only paths drivers see (a Java outside /usr, say), and more environment variables
# they get from the launcher's (names only; nothing else of its environment reaches them).
DMARKET_SANDBOX_RO_PATHS = env_list("DMARKET_SANDBOX_RO_PATHS", [])
DMARKET_SANDBOX_PASS_ENV = env_list("DMARKET_SANDBOX_PASS_ENV", [])
# host:port addresses a job's driver may not connect to, besides the database, the master's
# and the history server's web UIs (enforced with nftables when the server runs as root).
DMARKET_SANDBOX_BLOCKED = env_list("DMARKET_SANDBOX_BLOCKED", [])
