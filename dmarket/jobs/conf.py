"""The Spark properties a user's job may set (its `conf`): an allowlist, not a denylist.

A property is allowed when it is one of ALLOWED_KEYS, or starts with one of ALLOWED_PREFIXES
and is not one of REFUSED; anything else is refused, with the reason when REFUSED knows it and
the market's field to use instead when the market sets it (MARKET_FIELDS). doc/spark.md lists
the same (a test keeps the two in step).

The market's own properties (the event log, the UI, the driver's address, the job's tag,
the executors' environment, the cluster's security) are never on the list; submit_argv also
lets the market's values win over the job's."""

import re

from django.conf import settings

MAX_PROPERTIES = 100
MAX_VALUE_LENGTH = 1000
KEY = re.compile(r"^spark\.[A-Za-z0-9._-]{1,200}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DOC = "the allowed ones are in doc/spark.md"

SERIALIZERS = ("org.apache.spark.serializer.KryoSerializer",
               "org.apache.spark.serializer.JavaSerializer")

# Exact keys.
ALLOWED_KEYS = frozenset({
    # Partitioning.
    "spark.default.parallelism",
    "spark.files.maxPartitionBytes",
    "spark.files.openCostInBytes",
    # Shuffle.
    "spark.shuffle.compress",
    "spark.shuffle.spill.compress",
    "spark.shuffle.file.buffer",
    "spark.shuffle.unsafe.file.output.buffer",
    "spark.shuffle.sort.bypassMergeThreshold",
    "spark.shuffle.accurateBlockThreshold",
    "spark.shuffle.checksum.enabled",
    "spark.shuffle.checksum.algorithm",
    "spark.shuffle.io.maxRetries",
    "spark.shuffle.io.retryWait",
    "spark.shuffle.io.numConnectionsPerPeer",
    "spark.reducer.maxSizeInFlight",
    "spark.reducer.maxReqsInFlight",
    "spark.reducer.maxBlocksInFlightPerAddress",
    # Compression.
    "spark.rdd.compress",
    "spark.broadcast.compress",
    "spark.broadcast.blockSize",
    "spark.checkpoint.compress",
    "spark.io.compression.codec",
    "spark.io.compression.lz4.blockSize",
    "spark.io.compression.snappy.blockSize",
    "spark.io.compression.zstd.level",
    "spark.io.compression.zstd.bufferSize",
    # Memory.
    "spark.executor.memoryOverhead",
    "spark.executor.memoryOverheadFactor",
    "spark.executor.pyspark.memory",
    "spark.memory.fraction",
    "spark.memory.storageFraction",
    "spark.driver.maxResultSize",
    # Tasks and scheduling.
    "spark.task.cpus",
    "spark.task.maxFailures",
    "spark.speculation",
    "spark.locality.wait",
    "spark.scheduler.mode",
    "spark.scheduler.minRegisteredResourcesRatio",
    "spark.scheduler.maxRegisteredResourcesWaitingTime",
    # Timeouts and message sizes.
    "spark.network.timeout",
    "spark.executor.heartbeatInterval",
    "spark.rpc.askTimeout",
    "spark.rpc.message.maxSize",
    # Serialization: spark.serializer only as one of SERIALIZERS; no registrator and no
    # classes to register (they name classes to load).
    "spark.serializer",
    "spark.serializer.objectStreamReset",
    "spark.kryo.referenceTracking",
    "spark.kryo.registrationRequired",
    "spark.kryo.unsafe",
    "spark.kryoserializer.buffer",
    "spark.kryoserializer.buffer.max",
    # Python workers.
    "spark.python.worker.reuse",
    "spark.python.worker.memory",
})

# Prefixes: every key under them, less REFUSED.
ALLOWED_PREFIXES = (
    "spark.sql.",
    "spark.speculation.",
    "spark.locality.wait.",
)

# What the market sets from the job's own fields: (key, the field, the client's option).
MARKET_FIELDS = [
    ("spark.executor.memory", "executor_memory_mb", "--executor-memory"),
    ("spark.executor.cores", "cores", "--cores"),
    ("spark.executor.instances", "cores", "--cores"),
    ("spark.cores.max", "cores", "--cores"),
    ("spark.driver.memory", "driver_memory_mb", "--driver-memory"),
    ("spark.driver.memoryOverhead", "driver_memory_mb", "--driver-memory"),
    ("spark.driver.memoryOverheadFactor", "driver_memory_mb", "--driver-memory"),
    ("spark.app.name", "name", "--name"),
    ("spark.submit.pyFiles", "libs", "--lib"),
    ("spark.jars", "libs", "--lib"),
    ("spark.archives", "archives", "--archive"),
    ("spark.files", "files", "--file"),
]

# Why a property is refused, for the message: (regular expression, reason). Checked after
# ALLOWED_KEYS and MARKET_FIELDS, before ALLOWED_PREFIXES (so that it carves out of them).
_REFUSED = [
    # Security.
    (r"spark\.(authenticate|network\.crypto|io\.encryption|ssl|acls|admin\.acls|modify\.acls"
     r"|ui\.view\.acls|user\.groups)(\..*)?", "it touches the cluster's security"),
    (r"(spark\.|spark\.sql\.)redaction\..*", "it touches what logs and UIs hide"),
    # The driver's JVM, classpath and environment.
    (r"spark\.driver\.(extraJavaOptions|defaultJavaOptions)",
     "it touches the driver's JVM options"),
    (r"spark\.executor\.(extraJavaOptions|defaultJavaOptions)",
     "it touches the executors' JVM options"),
    (r".*(JavaOptions|javaOptions)", "it touches JVM options"),
    (r"(?i).*(classpath|librarypath|jar|artifact).*",
     "it changes the classpath; give JARs with --lib"),
    (r"spark\.(pyFiles|files\..*|jars\..*|archives\..*)",
     "it changes what files the job gets; use --lib, --archive or --file"),
    (r"spark\.(executorEnv|yarn\.appMasterEnv|kubernetes\.driverEnv)\..*",
     "it sets the environment of the job's processes"),
    (r"spark\.((.*\.)?python|python\.daemon\..*|python\.worker\.module|python\.use\.daemon"
     r"|r\..*)", "it chooses the program the job's processes run"),
    # The master, how the job is submitted, and the driver's address.
    (r"spark\.(master|remote|api\.mode|submit\..*|deploy.*|yarn\..*|kubernetes\..*"
     r"|standalone\..*|app\..*|driver\.supervise)", "it chooses the master or how the job is "
     "submitted"),
    (r"spark\.(driver\.(host|bindAddress|port|blockManager\..*)|blockManager\..*"
     r"|port\.maxRetries|(driver\.)?rpc\.(io\..*|connect\..*)|executor\.(bindAddress|port))",
     "it sets the driver's address or ports"),
    # What the market reads: the event log, the driver's log, its UI, its metrics.
    (r"spark\.eventLog\..*", "the market sets the event log, which billing reads"),
    (r"spark\.(log|driver\.log)\..*", "the launcher reads the driver's log"),
    (r"spark\.(ui|sql\.ui|sql\.streaming\.ui)\..*",
     "it touches the driver's web UI, which the market keeps off"),
    (r"spark\.(metrics|history|worker|shuffle\.service|storage\.decommission|decommission)"
     r"(\..*)?", "it touches the cluster's daemons, metrics or history"),
    (r"spark\.dmarket\..*", "it is the market's own"),
    # Resources the market gives the job.
    (r"spark\.dynamicAllocation\..*", "the market gives the job a fixed number of cores, "
     "its --cores"),
    (r"spark\.(.*\.)?resources?\..*", "the market assigns resources by the job's "
     "--machine-type"),
    (r"spark\.local\.dir", "the workers choose their scratch directories"),
    # SQL catalogs and their storage.
    (r"(?i)spark\.sql\..*(catalog|warehouse|metastore|hive).*",
     "it touches catalogs, the warehouse or the Hive metastore"),
    (r"spark\.sql\.connect\..*", "it touches the Spark Connect server"),
    # Classes to load into the driver or the executors.
    (r"spark\.(plugins|extraListeners|kryo\.registrator|kryo\.classesToRegister|shuffle\.manager"
     r"|sql\.queryExecutionListeners|sql\.streaming\.streamingQueryListeners|sql\.extensions)"
     r"(\..*)?", "it names plugins, listeners or classes to load"),
    (r"(?i)spark\..*(class|registrator|plugin|listener|extension|provider).*",
     "it names classes to load"),
    (r"(?i)spark\..*(impl|implementation)", "it names classes to load"),
]
REFUSED = [(re.compile(pattern + r"\Z"), reason) for pattern, reason in _REFUSED]


class BadConf(ValueError):
    """A job's conf that the market refuses; the message names the property."""

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


def market_field(key):
    for name, field, option in MARKET_FIELDS:
        if key == name:
            return field, option
    return None


def refusal(key):
    """Why `key` is refused ('' when it is allowed)."""
    if key in ALLOWED_KEYS:
        return ""
    known = market_field(key)
    if known:
        field, option = known
        return f"the market sets this property from the job's {field}; use {option} instead"
    for pattern, reason in REFUSED:
        if pattern.match(key):
            return f"this property is not one a job may set ({reason}); {DOC}"
    if key.startswith(ALLOWED_PREFIXES):
        return ""
    return f"this property is not one a job may set (it is not on the allowlist); {DOC}"


def allowed(key):
    return isinstance(key, str) and bool(KEY.match(key)) and not refusal(key)


def conf_check(conf):
    """The job's conf, checked: raises BadConf naming the first property refused."""
    if not isinstance(conf, dict):
        raise BadConf("", "give an object of Spark properties and their values")
    if len(conf) > MAX_PROPERTIES:
        raise BadConf("", f"at most {MAX_PROPERTIES} properties")
    for key, value in conf.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise BadConf(repr(key), "not a Spark property: give spark. and then letters, "
                                     "digits, '.', '_' or '-' (at most 200)")
        why = refusal(key)
        if why:
            raise BadConf(key, why)
        if not isinstance(value, str):
            raise BadConf(key, "give the value as a string")
        if len(value) > MAX_VALUE_LENGTH:
            raise BadConf(key, f"the value is longer than {MAX_VALUE_LENGTH} characters")
        if CONTROL.search(value):
            raise BadConf(key, "the value contains a control character")
        check_value(key, value)
    return dict(conf)


def check_value(key, value):
    if key == "spark.task.cpus":
        cores = settings.DMARKET_EXECUTOR_CORES
        if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= cores:
            raise BadConf(key, f"give a whole number from 1 to {cores}: this market's "
                               f"executors have {cores} core{'s' if cores != 1 else ''}, and "
                               "a task that needs more never runs")
    elif key == "spark.serializer" and value not in SERIALIZERS:
        raise BadConf(key, f"give {' or '.join(SERIALIZERS)}")
