"""Settings come from the environment; see doc/configuration.md for the full list.

Every variable is read through environs (marshmallow underneath): a value that does not parse
stops the process at start with an error that names the variable, e.g.
`environs.EnvValidationError: Environment variable "DMARKET_BILLING_POLL" invalid: Not a
valid number.`, instead of a bare ValueError or a wrong value at the first use.
No .env file is read, and `$VAR` in a value is not expanded (a secret may contain a `$`)."""

import logging
import os
import secrets
import socket
import sys
from decimal import Decimal
from pathlib import Path

import environs
import orjson
from django.core.exceptions import ImproperlyConfigured
from marshmallow import ValidationError, validate

BASE_DIR = Path(__file__).resolve().parent.parent

env = environs.Env(expand_vars=False)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@env.parser_for("flag")
def _flag(value):
    # On: 1, true, yes, on (any case); off: 0, false, no, off or empty. Anything else (a typo
    # such as DEBUG=ture) is refused rather than read as off.
    if isinstance(value, bool):
        return value
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValidationError(f"{value!r}: give 1, true, yes or on; 0, false, no, off or nothing.")


@env.parser_for("csv")
def _csv(value):
    # Comma-separated; items stripped, empty ones dropped (set but empty: an empty list).
    if not isinstance(value, str):
        return list(value)
    return [item.strip() for item in value.split(",") if item.strip()]


@env.parser_for("prices")
def _prices(value):
    # NAME=PRICE,...; "cpu=" is read as "core=" (the setting's old name).
    prices = {}
    for item in _csv(value):
        name, sep, price = item.partition("=")
        name = name.strip()
        try:
            amount = Decimal(price)
        except ArithmeticError:
            amount = None
        if not sep or not name or amount is None or not amount.is_finite():
            raise ValidationError(f"{item!r}: give NAME=PRICE, e.g. core=1,gpu=4.")
        prices["core" if name == "cpu" else name] = amount
    return prices


DATA_DIR = env.path("DMARKET_DATA_DIR", BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key():
    # A key generated once per installation and kept beside the data, so that tokens and
    # sessions survive restarts without any secret living in the repository.
    key = env.str("SECRET_KEY", "")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.flag("DEBUG", False)
ALLOWED_HOSTS = env.csv("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.csv("CSRF_TRUSTED_ORIGINS", [])

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
    "dmarket.common",
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
    # Answers a steady machine heartbeat itself; every other request goes on.
    "dmarket.machines.middleware.SteadyHeartbeatMiddleware",
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
    "default": env.dj_db_url(
        "DATABASE_URL", f"sqlite:///{DATA_DIR / 'dmarket.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks: take the write lock when a transaction begins, so that two
    # transactions cannot both read a balance and then both spend it.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's, its timestamps read by psycopg's C loader (dmarket/common/postgresql).
    DATABASES["default"]["ENGINE"] = "dmarket.common.postgresql"
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
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.flag("DMARKET_SECURE_COOKIES", False)
SESSION_COOKIE_AGE = 14 * 24 * 3600
# Production over HTTPS (doc/configuration.md, "Production settings"; `manage.py check
# --deploy` is clean with them). Each is off unless set, so that the quick start on
# http://127.0.0.1 works as before. HSTS: browsers that saw the header refuse plain HTTP to
# this host for that many seconds (hard to take back: start small).
SECURE_HSTS_SECONDS = env.int("DMARKET_HSTS_SECONDS", 0, validate=validate.Range(min=0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.flag("DMARKET_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.flag("DMARKET_HSTS_PRELOAD", False)
# Plain-HTTP requests answered with a redirect to HTTPS, except the health check and the
# metrics, which a load balancer or Prometheus may ask gunicorn directly.
SECURE_SSL_REDIRECT = env.flag("DMARKET_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^api/health/$", r"^api/metrics/$"]
# Behind a TLS proxy that sets X-Forwarded-Proto (and drops a client's own): a request is
# HTTPS when the proxy says so. Without it, every request reaches gunicorn as HTTP, so the
# redirect above would loop and the CSRF check would refuse the https:// Origin of the pages.
# Never set it without such a proxy: a client could then claim HTTPS.
if env.flag("DMARKET_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    # DRF's `Authorization: Token <key>`, against keys stored as digests (dmarket/accounts).
    # Also the dashboard's session (dmarket/web): its pages call this API from the browser,
    # with Django's CSRF check on every unsafe method (DRF's SessionAuthentication). The token
    # stays first, so a request with neither is still answered 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": ["dmarket.accounts.authentication.ApiTokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    # A machine agent's token only on its machine's routes (dmarket/accounts/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["dmarket.accounts.permissions.IsUser"],
    # DRF's JSON, written by orjson: the same bytes (UTF-8, compact, Z for UTC; the list
    # endpoints' tests compare theirs with DRF's own renderer), in a tenth of the time.
    "DEFAULT_RENDERER_CLASSES": ["drf_orjson_renderer.renderers.ORJSONRenderer"],
    "ORJSON_RENDERER_OPTIONS": (orjson.OPT_UTC_Z, orjson.OPT_NON_STR_KEYS),
    "DEFAULT_PARSER_CLASSES": ["dmarket.common.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "dmarket.common.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dmarket.common.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The throttles' client address: REMOTE_ADDR when 0 (a client's own X-Forwarded-For
    # would otherwise buy it a fresh allowance on every request); behind N proxies of the
    # operator's, the address the Nth from the end saw.
    "NUM_PROXIES": env.int("DMARKET_NUM_PROXIES", 0),
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
DMARKET_REGISTER_RATE = env.str("DMARKET_REGISTER_RATE", "10/hour")
DMARKET_LOGIN_RATE = env.str("DMARKET_LOGIN_RATE", "10/min")
DMARKET_LOGIN_USERNAME_RATE = env.str("DMARKET_LOGIN_USERNAME_RATE", "20/hour")

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

# Every line with its time, level, logger and context: the request id ("-" outside a request)
# and, in a daemon, the row it is handling ("job 12"). DMARKET_LOG_FORMAT=json writes one JSON
# object a line instead (time, level, logger, message, request_id, subject, exc_info), for a
# log collector.
DMARKET_LOG_FORMAT = env.str("DMARKET_LOG_FORMAT", "plain",
                             validate=validate.OneOf(["plain", "json"]))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "dmarket.common.middleware.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(context)s] %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s "
                        "%(subject)s",
                 "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": DMARKET_LOG_FORMAT,
                             "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env.str(
        "DMARKET_LOG_LEVEL", "INFO", validate=validate.OneOf(logging.getLevelNamesMapping()))},
}

# --- The market -----------------------------------------------------------------------------
# Credits are Decimal with 6 places (micro-credits); see dmarket/credits/models.py.
DMARKET_SIGNUP_GRANT = env.decimal("DMARKET_SIGNUP_GRANT", Decimal("100"))
DMARKET_DEFAULT_JOB_CAP = env.decimal("DMARKET_DEFAULT_JOB_CAP", Decimal("10"))
# Price per hour of one unit of each resource an executor holds: "core" (a CPU core) and each
# accelerator Spark schedules ("gpu"). A job pays each executor's cores x time at the core price
# plus its GPUs x time at the GPU price, times the premium rate, all fixed at submission.
# "cpu=" is read as "core=" (the setting's old name: a core-hour on a CPU machine).
DMARKET_PRICES = env.prices("DMARKET_PRICES", "core=1,gpu=4")
DMARKET_PRICES.setdefault("core", Decimal("1"))
# Machine types are "cpu" (cores only) and each accelerator with a price, which names the
# Spark resource (spark.worker.resource.<type>.*) its machines offer and its jobs ask for.
DMARKET_MAX_GPUS = env.int("DMARKET_MAX_GPUS", 64)
DMARKET_PREMIUM_CAP = env.decimal("DMARKET_PREMIUM_CAP", Decimal("2"))
DMARKET_MAX_JOB_CORES = env.int("DMARKET_MAX_JOB_CORES", 1024)
DMARKET_MAX_EXECUTOR_MEMORY_MB = env.int("DMARKET_MAX_EXECUTOR_MEMORY_MB", 1048576)
# The failure detector of shared machines (the seed's ping interval and timeout).
DMARKET_HEARTBEAT_INTERVAL = env.int("DMARKET_HEARTBEAT_INTERVAL", 10)
DMARKET_HEARTBEAT_TIMEOUT = env.int("DMARKET_HEARTBEAT_TIMEOUT", 30)
# The most heartbeats a second the market asks of its agents (Nomad's max_heartbeats_per_second):
# with more machines than this times the interval, the interval and the timeout handed to the
# agents both stretch. 0: never stretched.
DMARKET_MAX_HEARTBEATS_PER_SECOND = env.int("DMARKET_MAX_HEARTBEATS_PER_SECOND", 500)
# The steady heartbeat's statement (thousands a second) is prepared on each PostgreSQL
# connection: parsed and planned once, not on every beat. false behind a connection pooler in
# transaction mode that cannot keep prepared statements (PgBouncer before 1.22).
DMARKET_DATABASE_PREPARE = env.bool("DMARKET_DATABASE_PREPARE", True)
# How often the monitor looks (the seed's ping interval), and after how long offline a machine
# is removed (the seed's clean-up time; 0: never).
DMARKET_MONITOR_POLL = env.float("DMARKET_MONITOR_POLL", 5.0)
DMARKET_MACHINE_CLEANUP = env.int("DMARKET_MACHINE_CLEANUP", 0)
# Per-job directories (driver log, results) live here.
DMARKET_JOBS_DIR = env.path("DMARKET_JOBS_DIR", DATA_DIR / "jobs").resolve()
# Spark (the launcher and the machines' agents read these).
DMARKET_SPARK_MASTER_URL = env.str("DMARKET_SPARK_MASTER_URL", "spark://127.0.0.1:7077")
DMARKET_SPARK_MASTER_UI = env.str("DMARKET_SPARK_MASTER_UI", "http://127.0.0.1:8080")
DMARKET_HISTORY_URL = env.str("DMARKET_HISTORY_URL", "http://127.0.0.1:18080")
# Empty: the bin/ of the installed pyspark package.
DMARKET_SPARK_HOME = env.str("DMARKET_SPARK_HOME", "")
DMARKET_SPARK_CONF_DIR = env.str("DMARKET_SPARK_CONF_DIR", "")
# The closed cluster (doc/security.md): Spark's shared-secret authentication on the master,
# the workers and every driver, with a secret this server generates and keeps in its database
# (DMARKET_SPARK_SECRET sets it instead, e.g. from a vault, for several central servers);
# RPC encryption (AES-GCM between every JVM) and the encryption of what executors spill and
# shuffle to local disks, each on unless turned off here. A local[*] master needs none.
DMARKET_SPARK_AUTHENTICATE = env.str("DMARKET_SPARK_AUTHENTICATE", "on") != "off"
DMARKET_SPARK_SECRET = env.str("DMARKET_SPARK_SECRET", "")
DMARKET_SPARK_RPC_ENCRYPTION = env.str("DMARKET_SPARK_RPC_ENCRYPTION", "on") != "off"
DMARKET_SPARK_IO_ENCRYPTION = env.str("DMARKET_SPARK_IO_ENCRYPTION", "on") != "off"
DMARKET_EVENT_LOG_DIR = env.path("DMARKET_EVENT_LOG_DIR", DATA_DIR / "spark-events").resolve()
# Where executors reach the drivers the launcher runs (client mode).
DMARKET_DRIVER_HOST = env.str("DMARKET_DRIVER_HOST", "127.0.0.1")
# Cores of each executor; a job of N cores gets about N / this many executors.
DMARKET_EXECUTOR_CORES = env.int("DMARKET_EXECUTOR_CORES", 1)
DMARKET_EXECUTOR_PYTHON = env.str("DMARKET_EXECUTOR_PYTHON", sys.executable)
# Extra environment for every job's driver and executors. Keras 2 by default: TensorFlow
# jobs under TensorFlowOnSpark need it (Keras 3's fit fails under MultiWorkerMirroredStrategy).
DMARKET_JOB_ENV = dict(
    item.split("=", 1) for item in env.csv("DMARKET_JOB_ENV", ["TF_USE_LEGACY_KERAS=1"])
    if "=" in item)
# The launcher: how many drivers it runs at once (each is a JVM and a Python process on its
# host), how often it looks for work, and the name it claims jobs under.
DMARKET_DRIVER_SLOTS = env.int("DMARKET_DRIVER_SLOTS", 2)
DMARKET_LAUNCHER_POLL = env.float("DMARKET_LAUNCHER_POLL", 0.2)
DMARKET_LAUNCHER_ID = env.str("DMARKET_LAUNCHER_ID", socket.gethostname())
# A job that makes a daemon's pass raise is backed off (up to this many seconds) while the
# others go on, and marked (its status_reason says so) after this many failures in a row.
DMARKET_ROW_BACKOFF_MAX = env.float("DMARKET_ROW_BACKOFF_MAX", 60.0)
DMARKET_ROW_POISON_AFTER = env.int("DMARKET_ROW_POISON_AFTER", 5)
DMARKET_CANCEL_GRACE = env.float("DMARKET_CANCEL_GRACE", 10.0)
# The billing poller: how often, and how long after a driver's exit it waits for the history
# server to show the application complete before billing executors up to the exit.
DMARKET_BILLING_POLL = env.float("DMARKET_BILLING_POLL", 2.0)
DMARKET_SETTLE_GRACE = env.float("DMARKET_SETTLE_GRACE", 20.0)
# A pass asks the history server about its jobs in this many threads at once, for at most
# this many seconds: a job whose answer is not in by then waits for the next pass.
DMARKET_BILLING_CONCURRENCY = env.int("DMARKET_BILLING_CONCURRENCY", 8)
DMARKET_BILLING_DEADLINE = env.float("DMARKET_BILLING_DEADLINE", 10.0)
# Metered usage is posted to the ledger per job x machine at most once per this many seconds,
# and at the job's end (dmarket.credits.services.usage_post).
DMARKET_BILLING_INTERVAL = env.float("DMARKET_BILLING_INTERVAL", 60.0)
# The file store: every version of every user's files, on this server's disk.
DMARKET_FILES_DIR = env.path("DMARKET_FILES_DIR", DATA_DIR / "files").resolve()
DMARKET_STORAGE_QUOTA_MB = env.int("DMARKET_STORAGE_QUOTA_MB", 10240)
# Where the bytes live (doc/files.md): "local" (DMARKET_FILES_DIR) or "s3", any S3-compatible
# store (AWS S3, MinIO, Ceph, SeaweedFS: scripts/start_storage.sh writes these for its own).
# Names, versions, sizes and SHA-256 stay in the database either way.
DMARKET_STORAGE = env.str("DMARKET_STORAGE", "local").strip().lower()
if DMARKET_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"DMARKET_STORAGE={DMARKET_STORAGE!r}: give local or s3.")
DMARKET_S3_ENDPOINT = env.str("DMARKET_S3_ENDPOINT", "")
# The endpoint that executors reach (a worker in its own network may see the store at another
# address); the server's own by default.
DMARKET_S3_PUBLIC_ENDPOINT = env.str("DMARKET_S3_PUBLIC_ENDPOINT", DMARKET_S3_ENDPOINT)
DMARKET_S3_BUCKET = env.str("DMARKET_S3_BUCKET", "dmarket")
DMARKET_S3_ACCESS_KEY = env.str("DMARKET_S3_ACCESS_KEY", "")
DMARKET_S3_SECRET_KEY = env.str("DMARKET_S3_SECRET_KEY", "")
DMARKET_S3_REGION = env.str("DMARKET_S3_REGION", "us-east-1")
# How long the store's signed URL that a job's credential is exchanged for stays valid: a
# leaked one opens one file for at most this long, and only after the job's credential did.
DMARKET_S3_URL_SECONDS = env.int("DMARKET_S3_URL_SECONDS", 300)
# How long an upload waits for the store's answer to each part before it is refused (503).
DMARKET_S3_WRITE_TIMEOUT = env.float("DMARKET_S3_WRITE_TIMEOUT", 15.0)
# SeaweedFS's master and filer, when the store is SeaweedFS: `dmarket files where` asks them
# which volume servers hold a file's copies.
DMARKET_SEAWEEDFS_MASTER = env.str("DMARKET_SEAWEEDFS_MASTER", "")
DMARKET_SEAWEEDFS_FILER = env.str("DMARKET_SEAWEEDFS_FILER", "")
# The store's servers that answer without authentication (SeaweedFS's master, filer and volume
# servers, as host:port): no sandboxed job may connect to their ports.
DMARKET_STORAGE_INTERNAL = env.csv("DMARKET_STORAGE_INTERNAL", [])
# Where copies fetched from an object store are kept for what needs a path (environments,
# working directories, inference models and inputs); default DMARKET_FILES_DIR/cache.
DMARKET_FILES_CACHE_DIR = env.str("DMARKET_FILES_CACHE_DIR", "")
# Job environments (doc/spark.md): built by the launcher with `pip install --target` in a
# sandbox, from wheels only (no package's own code runs at build time), one per distinct set of
# requirements, packed here. The pip options (an index, --find-links DIR --no-index...) and the
# limits of a build.
DMARKET_ENVS_DIR = env.path("DMARKET_ENVS_DIR", DATA_DIR / "envs").resolve()
DMARKET_ENV_PIP_ARGS = env.csv("DMARKET_ENV_PIP_ARGS", ["--only-binary=:all:"])
DMARKET_ENV_BUILD_TIMEOUT = env.int("DMARKET_ENV_BUILD_TIMEOUT", 900)
DMARKET_ENV_BUILD_MEMORY_MB = env.int("DMARKET_ENV_BUILD_MEMORY_MB", 2048)
DMARKET_ENV_MAX_MB = env.int("DMARKET_ENV_MAX_MB", 4096)
DMARKET_ENV_MAX_REQUIREMENTS = env.int("DMARKET_ENV_MAX_REQUIREMENTS", 200)
DMARKET_ENV_MAX_BUILDING_PER_USER = env.int("DMARKET_ENV_MAX_BUILDING_PER_USER", 3)
# A job's --working-dir: the largest packed size the client sends, and unpacked.
DMARKET_WORKDIR_MAX_MB = env.int("DMARKET_WORKDIR_MAX_MB", 100)


def _public_url():
    # What workers fetch jobs' files from: the web server's own address unless it listens on
    # every interface, where only the operator knows which name the workers can reach.
    bind = env.str("DMARKET_BIND", "127.0.0.1")
    host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{env.int('DMARKET_PORT', 8000)}"


DMARKET_PUBLIC_URL = env.str("DMARKET_PUBLIC_URL", "").rstrip("/") or _public_url()
# The inference server (dmarket/inference): one Spark application serving every inference
# job, started by `manage.py inference --loop` while there are some, stopping itself after
# DMARKET_INFERENCE_IDLE seconds without one. Its cores (0: as many as the cluster gives).
DMARKET_INFERENCE_DIR = env.path("DMARKET_INFERENCE_DIR", DATA_DIR / "inference").resolve()
DMARKET_INFERENCE_CORES = env.int("DMARKET_INFERENCE_CORES", 0)
DMARKET_INFERENCE_EXECUTOR_MEMORY_MB = env.int("DMARKET_INFERENCE_EXECUTOR_MEMORY_MB", 1024)
# GPUs each of the inference server's executors holds (0: it runs on cores only, anywhere).
# Its executors land only on machines with that many free; their batches bill GPU-time too.
DMARKET_INFERENCE_GPUS = env.int("DMARKET_INFERENCE_GPUS", 0)
DMARKET_INFERENCE_IDLE = env.float("DMARKET_INFERENCE_IDLE", 60.0)
DMARKET_INFERENCE_POLL = env.float("DMARKET_INFERENCE_POLL", 1.0)
# The sandbox every driver runs in (dmarket/cluster/sandbox.py, doc/security.md). "auto":
# bubblewrap, as the system user DMARKET_SANDBOX_USER when the server runs as root, in a user
# namespace otherwise; "off" (an operator's explicit choice): drivers run unsandboxed. Where
# no sandbox can be made, the launcher starts no driver.
DMARKET_SANDBOX = env.str("DMARKET_SANDBOX", "auto")
DMARKET_SANDBOX_USER = env.str("DMARKET_SANDBOX_USER", "dmarket-job")
# The user the agent runs a machine's worker as (dmarket_client.worker_sandbox): where one
# runs on a launcher's host, its executors are refused the same ports as the drivers.
DMARKET_WORKER_USER = env.str("DMARKET_WORKER_USER", "dmarket-worker")
# Limits of each driver's sandbox: its memory is the job's driver memory plus this overhead
# (the Python driver beside the JVM's heap), processes and threads, open files per process,
# the private /tmp (in memory), and the job's results and log together.
DMARKET_DRIVER_MEMORY_MB = env.int("DMARKET_DRIVER_MEMORY_MB", 1024)
DMARKET_MAX_DRIVER_MEMORY_MB = env.int("DMARKET_MAX_DRIVER_MEMORY_MB", 8192)
DMARKET_DRIVER_MEMORY_OVERHEAD_MB = env.int("DMARKET_DRIVER_MEMORY_OVERHEAD_MB", 1536)
DMARKET_SANDBOX_MAX_PROCS = env.int("DMARKET_SANDBOX_MAX_PROCS", 2048)
DMARKET_SANDBOX_MAX_OPEN_FILES = env.int("DMARKET_SANDBOX_MAX_OPEN_FILES", 4096)
DMARKET_SANDBOX_TMP_MB = env.int("DMARKET_SANDBOX_TMP_MB", 1024)
DMARKET_JOB_DISK_QUOTA_MB = env.int("DMARKET_JOB_DISK_QUOTA_MB", 2048)
DMARKET_JOB_MAX_FILES = env.int("DMARKET_JOB_MAX_FILES", 100000)
# How long one launcher pass spends recording (and copying into the store) finished jobs'
# results; a job of many files takes several passes.
DMARKET_RESULTS_PASS_SECONDS = env.float("DMARKET_RESULTS_PASS_SECONDS", 5.0)
# The launchers police the cluster: every DMARKET_POLICE_INTERVAL seconds they kill each
# application older than DMARKET_APP_GRACE seconds that is no running job's verified one nor
# the inference server's (one showing a starting job's tag gets DMARKET_APP_VERIFY_GRACE to
# show its event log, here and in the launcher's check of its own jobs), record it (admin:
# Policed applications) and fail the job whose sandbox runs its driver. An application is
# killed at most grace + interval + one master request after it registered.
DMARKET_POLICE_INTERVAL = env.float("DMARKET_POLICE_INTERVAL", 1.0)
DMARKET_APP_GRACE = env.float("DMARKET_APP_GRACE", 2.0)
DMARKET_APP_VERIFY_GRACE = env.float("DMARKET_APP_VERIFY_GRACE", 10.0)
# Wall-clock limit of a job's run, in seconds: the default a job gets and the most it may ask.
DMARKET_JOB_MAX_RUNTIME = env.int("DMARKET_JOB_MAX_RUNTIME", 21600)
DMARKET_MAX_JOB_RUNTIME = env.int("DMARKET_MAX_JOB_RUNTIME", 604800)
# More read-only paths drivers see (a Java outside /usr, say), and more environment variables
# they get from the launcher's (names only; nothing else of its environment reaches them).
DMARKET_SANDBOX_RO_PATHS = env.csv("DMARKET_SANDBOX_RO_PATHS", [])
DMARKET_SANDBOX_PASS_ENV = env.csv("DMARKET_SANDBOX_PASS_ENV", [])
# host:port addresses a job's driver may not connect to, besides the database, the master's
# and the history server's web UIs (enforced with nftables when the server runs as root).
DMARKET_SANDBOX_BLOCKED = env.csv("DMARKET_SANDBOX_BLOCKED", [])
