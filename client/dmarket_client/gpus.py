"""Accelerators a shared machine offers, the way Spark schedules them: the worker starts with
`spark.worker.resource.<name>.amount` and a discovery script that prints their addresses;
each executor that asks for some gets its own addresses (in the resources file the worker
passes it with --resourcesFile), and each task gets its part (TaskContext.resources()).

No Django here: the agent, its worker sandbox and the executors' shim use it."""

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

# Spark's name for the resource; a machine type other than "cpu" names the resource it offers.
GPU = "gpu"
ADDRESS = re.compile(r"^[0-9]{1,3}$")
# A resource name goes into the worker's -D options: nothing there may split or quote one.
RESOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
# What Spark's launcher (CommandBuilderUtils.parseOptionString) splits or unquotes
# SPARK_WORKER_OPTS at; a backslash before each keeps it in one option.
OPTION_SPECIAL = re.compile(r"""([\s"'\\])""")
# What an executor holding a GPU needs besides the GPU's own node (NVIDIA's driver).
CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
# The GPU addresses an executor holds, in the order CUDA numbers them inside its sandbox
# (which shows it no other GPU): what the samples and the inference tasks map a task's
# addresses through (they run without this package, so each has its few lines).
VISIBLE_ENV = "DMARKET_EXECUTOR_GPUS"
# CUDA's own default numbers the fastest GPU first; by PCI bus it numbers them as nvidia-smi
# does (the addresses), and inside an executor's sandbox in VISIBLE_ENV's order.
CUDA_ORDER = "PCI_BUS_ID"


def detect_gpus():
    """The addresses (nvidia-smi's indexes) of this computer's NVIDIA GPUs; [] without any."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        done = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if ADDRESS.match(line.strip())]


def parse_addresses(text):
    """'0,1' -> ['0', '1']; ValueError naming a bad one."""
    addresses = [a.strip() for a in str(text).split(",") if a.strip()]
    for address in addresses:
        if not ADDRESS.match(address):
            raise ValueError(f"{address!r} is not a GPU address (a number such as 0)")
    if len(set(addresses)) != len(addresses):
        raise ValueError("a GPU address is named twice")
    return addresses


def discovery_script(path, resource, addresses):
    """Write Spark's discovery script for the worker: it prints the resource's addresses."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"name": resource, "addresses": [str(a) for a in addresses]})
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{payload}\nEOF\n")
    path.chmod(0o755)
    return path


def worker_resource_opts(resource, amount, script):
    """The worker's -D options offering `amount` of `resource`, found by `script` (the path
    the worker sees), for SPARK_WORKER_OPTS; "" when it offers none."""
    if not amount:
        return ""
    if not RESOURCE.match(resource):
        raise ValueError(f"{resource!r} is not a resource name Spark can be given")
    # The state directory (the script's, without the sandbox) may be under a home with a
    # space in its path.
    script = OPTION_SPECIAL.sub(r"\\\1", str(script))
    return (f"-Dspark.worker.resource.{resource}.amount={int(amount)} "
            f"-Dspark.worker.resource.{resource}.discoveryScript={script}")


# The file the worker writes for an executor and names last in its command line (Spark's
# ExecutorRunner: File.createTempFile("resource-executor-", ".json", executorDir)).
RESOURCES_FILE = re.compile(r"^resource-executor-[0-9]+\.json$")
RESOURCES_MAX_BYTES = 64 * 1024


def executor_resources(argv, cwd="."):
    """{resource: [addresses]} from the resources file the worker gave the executor; {} when
    it holds none. Only the pair the worker appends last counts (an application can put
    another --resourcesFile among its own Java options), only a regular file of the worker's
    name in the executor's own directory, read without following a link and at most 64 KiB:
    the directory is the application's, which could have put anything there. Anything
    malformed gives nothing."""
    if len(argv) < 2 or argv[-2] != "--resourcesFile":
        return {}
    path = Path(argv[-1])
    if (not path.is_absolute() or not RESOURCES_FILE.match(path.name)
            or os.path.realpath(path.parent) != os.path.realpath(cwd)):
        return {}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        data = os.read(fd, RESOURCES_MAX_BYTES + 1)
    except OSError:
        return {}
    finally:
        os.close(fd)
    if len(data) > RESOURCES_MAX_BYTES:
        return {}
    try:
        entries = json.loads(data)
    except ValueError:
        return {}
    out = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            name = entry["id"]["resourceName"]
            addresses = [a for a in entry["addresses"] if isinstance(a, str) and ADDRESS.match(a)]
        except (KeyError, TypeError):
            continue
        if isinstance(name, str):
            out.setdefault(name, []).extend(addresses)
    return out


def gpu_devices(addresses, dev="/dev"):
    """The device nodes of these GPUs (and the driver's control nodes) that exist here."""
    if not addresses:
        return []
    nodes = [os.path.join(dev, f"nvidia{a}") for a in addresses]
    nodes += [os.path.join(dev, name) for name in CONTROL_DEVICES]
    return [n for n in nodes if os.path.exists(n)]
