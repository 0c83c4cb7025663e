"""The machine agent: keeps a Spark worker running on this machine while it is shared, with
exactly the cores and memory its owner offered, and tells the market it is alive.

It restarts the worker when it dies, stops it outside the sharing window (the server then
shows the machine PAUSED), and stops it gracefully when the agent is told to stop (SIGTERM):
Spark then reruns the worker's tasks elsewhere.

It authenticates with its machine's token (issued with the registration, kept in the
machine's state file, mode 600), which is good for that machine's heartbeat and details only;
the owner's own token is never in its environment, nor in its worker's and executors'.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, time as dtime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import gpus
from .api import ApiError


# Variables of the client's that hold a secret: kept from the agent and its worker.
SECRET_ENV = ("DMARKET_TOKEN",)
# Where Spark daemons read the cluster's secret (never a command line, which every process of
# the computer can read); the worker passes it on to its executors the same way.
SPARK_SECRET_ENV = "_SPARK_AUTH_SECRET"


def agent_env(environ=None):
    """The environment for the agent and its worker (whose executors run strangers' code):
    this process's, without the owner's token."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k not in SECRET_ENV + (SPARK_SECRET_ENV,)}


def parse_window(text):
    start, _, end = text.partition("-")
    return dtime.fromisoformat(start.strip()), dtime.fromisoformat(end.strip())


def is_shared(sharing_window, share_until, now=None):
    """The server's rule, for when the server cannot be asked: a daily UTC window (which may
    wrap past midnight) and an end time."""
    now = now or datetime.now(timezone.utc)
    if share_until:
        until = datetime.fromisoformat(share_until.replace("Z", "+00:00"))
        if now >= until:
            return False
    if not sharing_window:
        return True
    start, end = parse_window(sharing_window)
    t = now.astimezone(timezone.utc).time()
    return start <= t < end if start < end else (t >= start or t < end)


def local_address(server):
    """The address this machine reaches the server from (no packet is sent)."""
    host = urlsplit(server).hostname or "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def spark_class(spark_home=None):
    """bin/spark-class from --spark-home, SPARK_HOME, the pyspark package, or PATH."""
    candidates = []
    if spark_home or os.environ.get("SPARK_HOME"):
        candidates.append(Path(spark_home or os.environ["SPARK_HOME"]) / "bin" / "spark-class")
    try:
        import pyspark

        candidates.append(Path(pyspark.__file__).parent / "bin" / "spark-class")
    except ImportError:
        pass
    found = shutil.which("spark-class")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.exists():
            return path
    raise RuntimeError("Spark is not installed here: pip install 'dmarket-compute[worker]' "
                       "(and Java 17), or give --spark-home")


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def worker_security_env(settings):
    """The worker's part of the closed cluster: its secret and Spark's security properties."""
    env = {}
    if settings.get("spark_secret"):
        env[SPARK_SECRET_ENV] = settings["spark_secret"]
    opts = " ".join(f"-D{k}={v}" for k, v in sorted((settings.get("spark_conf") or {}).items()))
    if opts:
        env["SPARK_WORKER_OPTS"] = opts
    return env


def append_opts(env, opts):
    """SPARK_WORKER_OPTS with `opts` after what it holds already (the security settings)."""
    if opts:
        env["SPARK_WORKER_OPTS"] = " ".join(filter(None, [env.get("SPARK_WORKER_OPTS"), opts]))
    return env


def offered_gpus(machine):
    """(resource, addresses) of the GPUs the machine offers: those saved with it (`machine add`
    chose them), else the first ones found here; (resource, []) when it offers none.

    Fewer found than offered is a RuntimeError: the worker is not started, rather than
    started with fewer (which the market would still count and bill as offered) or with
    addresses that are not there."""
    count = int(machine.get("gpus") or 0)
    resource = machine.get("machine_type") or gpus.GPU
    if count <= 0:
        return resource, []
    saved = machine.get("gpu_addresses")
    found = list(saved) if saved is not None else gpus.detect_gpus()
    if len(found) < count:
        where = "saved with it" if saved is not None else "found here"
        raise RuntimeError(f"machine {machine.get('id')} offers {count} GPU(s) but "
                           f"{len(found)} are {where} ({', '.join(found) or 'none'}); the "
                           f"worker was not started")
    return resource, found[:count]


def python_platform():
    """The Python its executors run and its platform: which job environments fit here (the
    executors run the Python the agent runs, doc/deploy.md)."""
    import sysconfig

    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "platform": sysconfig.get_platform()}

class Agent:
    def __init__(self, client, machine, work_dir, spark_home=None, log=None,
                 save_settings=None, sandbox=True):
        self.client = client
        # False only by the owner's explicit --no-sandbox (machine_cli says what it gives up).
        self.sandboxed = sandbox
        self.box = None
        self.machine = machine
        self.settings = machine.get("agent") or {}
        # Called with the agent settings when the server changed them (a rotated secret), so
        # that a restarted agent starts its worker with the current ones.
        self.save_settings = save_settings
        self.work_dir = Path(work_dir)
        self.spark_class = spark_class(spark_home)
        self.log = log or (lambda message: print(message, flush=True))
        self.worker = None
        self.worker_ui = None
        self.worker_id = ""
        self.restarts = 0
        self.stopping = threading.Event()

    # --- the worker ---------------------------------------------------------------------

    def worker_running(self):
        return self.worker is not None and self.worker.poll() is None

    def start_worker(self):
        address = self.machine["address"]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port(address)
        env = dict(agent_env(), SPARK_LOCAL_IP=address, SPARK_LOCAL_HOSTNAME=address,
                   PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable))
        env.update(self.settings.get("executor_env") or {})
        env.update(worker_security_env(self.settings))
        resource, addresses = offered_gpus(self.machine)
        argv = [str(self.spark_class), "org.apache.spark.deploy.worker.Worker",
                self.settings["master_url"], "--host", address,
                "--cores", str(self.machine["cores"]),
                "--memory", f"{self.machine['memory_mb']}m",
                "--work-dir", str(self.work_dir / "work"), "--webui-port", str(port)]
        preexec = None
        if self.box is not None:
            # What a dead worker left behind (executors out of its process group) ends first.
            self.box.cleanup()
        if self.sandboxed:
            from .worker_sandbox import WorkerSandbox

            self.box = WorkerSandbox(self.work_dir, self.machine["memory_mb"], sys.executable,
                                     env["PYSPARK_PYTHON"], gpu_resource=resource,
                                     gpu_addresses=addresses)
            self.box.prepare()
        if addresses:
            # The sandboxed worker sees the script in its shim directory, read-only.
            script = (self.box.discovery_script() if self.sandboxed else gpus.discovery_script(
                self.work_dir / "gpu-discovery", resource, addresses))
            append_opts(env, gpus.worker_resource_opts(resource, len(addresses), script))
            # Only in PCI bus order does CUDA number the GPUs as nvidia-smi does (the
            # addresses): for unsandboxed executors, which see every GPU here (sandboxed ones
            # get it from the shim).
            env["CUDA_DEVICE_ORDER"] = gpus.CUDA_ORDER
        if self.sandboxed:
            argv = self.box.command(argv, env)
            env = self.box.env(env, keep=self.settings.get("executor_env") or {})
            preexec = self.box.preexec
        with open(self.work_dir / "worker.log", "ab") as log:
            self.worker = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, preexec_fn=preexec)
        (self.work_dir / "worker.pid").write_text(f"{self.worker.pid}\n")
        self.worker_ui = f"http://{address}:{port}"
        self.worker_id = ""
        where = "WITHOUT a sandbox (--no-sandbox)" if self.box is None else "in its sandbox"
        if self.box is not None and self.box.unlimited:
            where += f" (not limited here: {', '.join(self.box.unlimited)}; as root they are)"
        offer = f", {len(addresses)} {resource} ({', '.join(addresses)})" if addresses else ""
        self.log(f"worker started (pid {self.worker.pid}) {where}: {self.machine['cores']} "
                 f"cores, {self.machine['memory_mb']} MB{offer}, "
                 f"master {self.settings['master_url']}")

    def stop_worker(self, grace=15):
        if not self.worker_running():
            self.worker = None
            return
        self.log(f"stopping the worker (pid {self.worker.pid})")
        try:
            os.killpg(self.worker.pid, signal.SIGTERM)
            self.worker.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        except ProcessLookupError:
            pass
        self.worker = None
        self.worker_id = ""
        if self.box is not None:
            self.box.cleanup()

    def worker_state(self):
        """ALIVE once the worker answers with its id; STARTING before; STOPPED without one."""
        if not self.worker_running():
            return "STOPPED"
        if not self.worker_id:
            try:
                info = requests.get(self.worker_ui + "/json/", timeout=2).json()
                self.worker_id = info.get("id", "")
            except (requests.RequestException, ValueError):
                return "STARTING"
        return "ALIVE" if self.worker_id else "STARTING"

    # --- the loop -----------------------------------------------------------------------

    def step(self):
        """One round: keep the worker as the sharing window wants, then a heartbeat."""
        shared = is_shared(self.machine.get("sharing_window"), self.machine.get("share_until"))
        if shared and not self.worker_running():
            if self.worker is not None:
                self.restarts += 1
                self.log(f"the worker died (exit {self.worker.returncode}); restarting it")
            self.start_worker()
        elif not shared and self.worker_running():
            self.log("outside the sharing window")
            self.stop_worker()
        reply = self.client.post(f"machines/{self.machine['id']}/heartbeat/",
                                 {"worker_state": self.worker_state(),
                                  "worker_id": self.worker_id, **python_platform()})
        self.security_update(reply or {})
        self.timing_update(reply or {})
        return reply

    def timing_update(self, reply):
        """The interval each answer asks for: longer while the market has more machines than
        its server hears a second at the usual one."""
        interval = reply.get("heartbeat_interval")
        if not isinstance(interval, (int, float)) or interval <= 0:
            return
        if interval != self.settings.get("heartbeat_interval"):
            self.log(f"the server asks for a heartbeat every {interval} s")
            self.settings = {**self.settings, "heartbeat_interval": interval,
                             "heartbeat_timeout": reply.get("heartbeat_timeout")}

    def security_update(self, reply):
        """A heartbeat answer with another secret (or security settings): the cluster's was
        rotated, and the worker joins the restarted master only with the new one."""
        changed = {k: reply[k] for k in ("spark_secret", "spark_conf")
                   if k in reply and reply[k] != self.settings.get(k)}
        if not changed:
            return
        self.settings = {**self.settings, **changed}
        if self.save_settings is not None:
            self.save_settings(self.settings)
        if self.worker_running():
            self.log("the cluster's secret changed; restarting the worker with it")
            self.stop_worker()
            self.start_worker()

    def run(self):
        """Until SIGTERM/SIGINT, or until the server says the machine was removed."""
        def stop(signum, frame):
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        last_state = None
        try:
            while not self.stopping.is_set():
                try:
                    reply = self.step()
                except ApiError as e:
                    # 401: its machine token was revoked (the machine was removed).
                    if e.status in (401, 403, 404, 409):
                        self.log(f"the server no longer knows this machine: {e.detail}")
                        return 1
                    self.log(f"heartbeat failed: {e.detail}")
                else:
                    if reply and reply.get("state") != last_state:
                        last_state = reply.get("state")
                        self.log(f"the market shows this machine {last_state}")
                self.stopping.wait(float(self.settings.get("heartbeat_interval", 10)))
        finally:
            self.stop_worker()
        self.log("agent stopped")
        return 0


# --- the agent's files: one pid file, one log and one state file per machine ------------------

def agent_paths(state_dir, machine_id):
    base = Path(state_dir) / f"machine-{machine_id}"
    return {"dir": base, "pid": base / "agent.pid", "log": base / "agent.log",
            "machine": base / "machine.json"}


def agent_pid(state_dir, machine_id):
    """The pid of this machine's running agent, or None."""
    try:
        pid = int(agent_paths(state_dir, machine_id)["pid"].read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def agent_stop(state_dir, machine_id, timeout=30):
    """Stop the machine's agent (which stops its worker gracefully); False if none ran."""
    pid = agent_pid(state_dir, machine_id)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    agent_paths(state_dir, machine_id)["pid"].unlink(missing_ok=True)
    return True


def save_machine(state_dir, machine):
    """The registration answer, with the machine token, readable by its owner only."""
    paths = agent_paths(state_dir, machine["id"])
    paths["dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = paths["machine"].with_suffix(".tmp")
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(machine, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, paths["machine"])
    return paths
