"""The contributor's sandbox: the machine agent runs its Spark worker, and so every executor
(strangers' code), in bubblewrap, and each executor again in a sandbox of its own.

The worker's sandbox:
- an unprivileged identity: the system user DMARKET_WORKER_USER (dmarket-worker) when the agent
  runs as root (setpriv, no capabilities), the agent's own uid in a user namespace otherwise;
- the system, Python, Spark and Java read-only; writable only the worker's work and scratch
  directories (as root the scratch one mounted noexec); the
  contributor's home, the agent's state (its machine token) and everything else not there;
- an environment built from an allowlist;
- memory and processes in a cgroup (as root): what the owner offered, plus the worker daemon's
  own allowance; every process ends with the worker (its process group and cgroup, which the
  agent empties when it stops the worker).

Each executor: the worker starts executors with `$JAVA_HOME/bin/java`; JAVA_HOME is a shim
(this module, run as a script) that starts the executor in a nested sandbox of its own (its
own PID namespace, so no other process of the machine's; the work directory hidden but for its
own application's directory and its own scratch directories). The real Java is bound where no
job is told, and every `java` in the system is the shim.
"""

import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import gpus, isolation

WORKER_USER = os.environ.get("DMARKET_WORKER_USER", "dmarket-worker")
# What the worker daemon's own JVM (and the agent's view of its processes) may take beyond
# the memory offered to executors.
WORKER_OVERHEAD_MB = int(os.environ.get("DMARKET_WORKER_OVERHEAD_MB", "768"))
WORKER_MAX_PROCS = int(os.environ.get("DMARKET_WORKER_MAX_PROCS", "4096"))
TMP_MB = int(os.environ.get("DMARKET_WORKER_TMP_MB", "512"))
# Where the sandbox sees the shim (as JAVA_HOME) and the real Java.
SHIM_HOME = "/run/dmarket/java"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
APP_ID = re.compile(r"^app-[0-9]+-[0-9]+$")
# The agent's environment variables a worker may get, none of them secret.
PASS_ENV = ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS",
            "PYSPARK_PYTHON", "SPARK_LOCAL_IP", "SPARK_LOCAL_HOSTNAME", "SPARK_WORKER_OPTS",
            "_SPARK_AUTH_SECRET", "SPARK_HOME"]
# Where an executor sees the real Java: a path that exists in no worker's sandbox, so that an
# application naming it as its executors' JAVA_HOME gets nothing started.
EXECUTOR_JAVA = "/run/dmarket-executor/jdk"
# What spark-class exports for the daemon it starts; ENV_MARK ends its command in the printout.
SPARK_CLASS_ENV = ("SPARK_SCALA_VERSION", "SPARK_ENV_LOADED", "SPARK_HOME")
ENV_MARK = "--dmarket-env--"
# The worker's discovery script for the GPUs it offers, in the shim directory (which the
# worker's sandbox sees read-only at SHIM_HOME).
DISCOVERY_SCRIPT = "gpu-discovery"


class Unavailable(RuntimeError):
    """No worker sandbox can be made here; the message says why and what to do."""


def is_root():
    return os.geteuid() == 0


def real_java_home():
    """The JDK the worker runs: JAVA_HOME, else the one `java` on PATH belongs to."""
    if os.environ.get("JAVA_HOME") and os.path.isfile(os.path.join(os.environ["JAVA_HOME"],
                                                                   "bin", "java")):
        return Path(os.path.realpath(os.environ["JAVA_HOME"]))
    java = shutil.which("java")
    if not java:
        raise Unavailable("Java is not installed (apt-get install openjdk-17-jre-headless)")
    return Path(os.path.realpath(java)).parent.parent


def java_binaries(roots):
    """Every file named java in a bin/ directory under the read-only trees: each is covered
    by the shim, so that an application naming its own JAVA_HOME still gets the shim."""
    found = set()
    for root in roots:
        for base in ("/usr/lib/jvm",) if root == "/usr" else (root,):
            if not os.path.isdir(base):
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                if "java" in filenames and os.path.basename(dirpath) == "bin":
                    path = os.path.join(dirpath, "java")
                    if os.path.isfile(path) and not os.path.islink(path):
                        found.add(path)
    return sorted(found)


def python_paths(python):
    real = Path(os.path.realpath(python))
    return sorted({sys.prefix, sys.base_prefix, str(real.parent.parent),
                   str(Path(python).parent.parent)})


def probe():
    """Why no worker sandbox can be made here ("" when one can): bubblewrap, the identity,
    and a nested sandbox (the executors') tried for real."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    inner = [bwrap, "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
             *isolation.system_args(), "--proc", "/proc", "--dev", "/dev", "--unshare-pid",
             "--", "true"]
    outer = [bwrap, *isolation.system_args(), "--bind", "/proc", "/proc", "--dev", "/dev",
             "--tmpfs", "/tmp"]
    if is_root():
        try:
            pwd.getpwnam(WORKER_USER)
        except KeyError:
            return (f"the worker's user {WORKER_USER!r} does not exist: useradd --system "
                    f"{WORKER_USER} (./install.sh does), or set DMARKET_WORKER_USER")
        if not shutil.which("setpriv"):
            return "setpriv (util-linux) is not installed"
        outer += ["--", *setpriv_argv()]
    else:
        outer = [outer[0], "--unshare-user", "--cap-drop", "ALL", *outer[1:], "--"]
    try:
        done = subprocess.run(outer + inner, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap does not run here: {e}"
    if done.returncode != 0:
        return ("bubblewrap cannot make the workers' nested sandboxes here (unprivileged user "
                "namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1): "
                + done.stderr.decode(errors="replace").strip()[-300:])
    return ""


def bind_args(ro=(), rw=(), made=()):
    """--ro-bind / --bind for each (source, destination), shortest destination first, each
    missing parent made 0755 first (bubblewrap would make it untraversable for the sandbox's
    user). Paths under the read-only system are there already."""
    args, made = [], {Path(p) for p in made}
    system = [Path(p) for p in isolation.SYSTEM_RO]
    pairs = [("--ro-bind", a, b) for a, b in ro] + [("--bind", a, b) for a, b in rw]
    for flag, source, dest in sorted(pairs, key=lambda t: len(Path(t[2]).parts)):
        dest = Path(dest)
        if flag == "--ro-bind" and any(dest == r or r in dest.parents for r in system):
            continue
        for parent in reversed(dest.parents):
            if str(parent) == "/" or parent in made or any(
                    parent == r or r in parent.parents for r in system):
                continue
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
        args += [flag, str(source), str(dest)]
        made.add(dest)
    return args


def gpu_bind_args(addresses, dev="/dev"):
    """--dev-bind for these GPUs' device nodes and the driver's control nodes that exist in
    `dev`, each at its place in the sandbox's /dev; nothing without GPUs."""
    args = []
    for node in gpus.gpu_devices(addresses, dev):
        args += ["--dev-bind", node, f"/dev/{os.path.basename(node)}"]
    return args


def setpriv_argv():
    return ["setpriv", f"--reuid={WORKER_USER}", f"--regid={WORKER_USER}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def worker_ids():
    entry = pwd.getpwnam(WORKER_USER)
    return entry.pw_uid, entry.pw_gid


class WorkerSandbox:
    """The worker's sandbox, for one machine: `command(argv)` wraps the worker's command,
    `env(env)` filters its environment, `preexec` joins its cgroups in the child."""

    def __init__(self, base_dir, memory_mb, python, executor_python=None, *,
                 gpu_resource=gpus.GPU, gpu_addresses=()):
        self.base = Path(base_dir)
        # The GPUs the machine offers: their nodes are in the worker's /dev, and each
        # executor gets those of its own.
        self.gpu_resource = gpu_resource
        self.gpu_addresses = list(gpu_addresses)
        self.executor_python = executor_python or python
        self.work = self.base / "work"
        self.local = self.base / "local"
        self.memory_mb = memory_mb
        self.python = python
        self.java_home = real_java_home()
        # A path no job is told: the real Java inside the sandbox.
        self.hidden_java = f"/run/dmarket/jdk-{secrets.token_hex(8)}"
        self.shim_dir = self.base / "shim"
        self.spark_env = {}
        self.cgroups = []
        self.unlimited = []

    def prepare(self):
        problem = probe()
        if problem:
            raise Unavailable(problem)
        for path in (self.work, self.local):
            path.mkdir(parents=True, exist_ok=True)
            if is_root():
                os.chown(path, *worker_ids())
        self.shim_dir.joinpath("bin").mkdir(parents=True, exist_ok=True)
        # The shim's settings are in a file the sandbox only reads: its environment is partly
        # the applications' (spark.executorEnv.*), so nothing there is trusted.
        (self.shim_dir / "shim.json").write_text(json.dumps({
            "java_home": self.hidden_java, "work": str(self.work), "local": str(self.local),
            "readable": self.readable(), "bwrap": shutil.which("bwrap"),
            "gpu_resource": self.gpu_resource, "gpu_addresses": self.gpu_addresses}))
        shim = self.shim_dir / "bin" / "java"
        shim.write_text(f"#!/bin/sh\nexec {self.python} -I -m dmarket_client.worker_sandbox "
                        f"--shim {SHIM_HOME}/shim.json \"$@\"\n")
        shim.chmod(0o755)
        self.cgroups, self.unlimited = [], []
        if is_root():
            # Named by its state directory: two agents on one computer (of two markets, or
            # of one market's test beside its demo) never share one.
            digest = hashlib.sha256(str(self.base.resolve()).encode()).hexdigest()[:12]
            name = f"worker-{self.base.name}-{digest}"
            # What an agent killed before it could stop its worker left there ends now.
            self.cgroups = list(isolation.cgroup_dirs(name).values())
            self.cleanup()
            self.cgroups, self.unlimited = isolation.cgroups_create(
                name, self.memory_mb + WORKER_OVERHEAD_MB, WORKER_MAX_PROCS)
        else:
            self.unlimited = ["memory", "pids"]

    def discovery_script(self):
        """Write the discovery script of the GPUs offered; its path as the worker sees it."""
        gpus.discovery_script(self.shim_dir / DISCOVERY_SCRIPT, self.gpu_resource,
                              self.gpu_addresses)
        return f"{SHIM_HOME}/{DISCOVERY_SCRIPT}"

    def readable(self):
        from pyspark import __file__ as pyspark_file

        paths = python_paths(self.python) + python_paths(self.executor_python) + [
            os.path.realpath(Path(pyspark_file).parent),
                                             str(Path(__file__).resolve().parent.parent)]
        return sorted({p for p in paths if os.path.exists(p)}, key=lambda p: len(p))

    def worker_java(self, argv, env):
        """The worker's own java command line, as spark-class makes it (run here, with a
        `java` that prints the final command instead of running it), with the real Java at
        its path in the sandbox: the worker runs it directly, and every java it starts itself
        (executors, drivers) is the shim."""
        real = self.java_home / "bin" / "java"
        printer = self.shim_dir / "print-java"
        (printer / "bin").mkdir(parents=True, exist_ok=True)
        script = printer / "bin" / "java"
        script.write_text("#!/bin/sh\nfor a in \"$@\"; do\n"
                          "  [ \"$a\" = org.apache.spark.launcher.Main ] && "
                          f"exec {real} \"$@\"\ndone\nprintf '%s\\0' \"$@\" {ENV_MARK} "
                          + " ".join(f'"{n}=${n}"' for n in SPARK_CLASS_ENV) + "\n")
        script.chmod(0o755)
        done = subprocess.run(argv, env={**env, "JAVA_HOME": str(printer)},
                              capture_output=True, timeout=120)
        parts = done.stdout.decode().split("\0")
        if done.returncode != 0 or ENV_MARK not in parts or parts.index(ENV_MARK) < 1:
            raise Unavailable("spark-class did not give the worker's command: "
                              + done.stderr.decode(errors="replace")[-300:])
        mark = parts.index(ENV_MARK)
        # What spark-class sets for the worker (its launcher library builds the executors'
        # command lines with it).
        self.spark_env = dict(p.split("=", 1) for p in parts[mark + 1:] if "=" in p
                              and not p.endswith("="))
        return [f"{self.hidden_java}/bin/java", *parts[:mark]]

    def command(self, argv, env=None):
        """The sandbox around the worker: argv is spark-class's (spark-class, the Worker
        class and its arguments)."""
        argv = self.worker_java(list(argv), env or os.environ)
        ro = self.readable()
        # /proc: its own would be covered by bubblewrap's read-only parts, where the
        # executors' nested sandboxes could not mount theirs; the host's shows the worker the
        # host's process list (not other users' details; executors have their own).
        args = ["bwrap", *isolation.system_args(), "--bind", "/proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", str(TMP_MB * 1024 * 1024), "--tmpfs", "/tmp"]
        args += bind_args(ro=[(p, p) for p in ro] + [(self.java_home, self.hidden_java),
                                                      (self.shim_dir, SHIM_HOME)],
                          rw=[(p, p) for p in (self.work, self.local)])
        shim = str(self.shim_dir / "bin" / "java")
        for binary in java_binaries(isolation.SYSTEM_RO + ro):
            args += ["--ro-bind", shim, binary]
        # After --dev /dev, which they are put into. The executors' sandboxes take theirs
        # from here.
        args += gpu_bind_args(self.gpu_addresses)
        # No PID namespace of its own: the executors' nested bubblewraps read their children
        # in /proc, which must be the host's to mount their own. Every process of it is in its
        # cgroup (as root) and its process group, where the agent ends them all.
        args += ["--unshare-ipc", "--die-with-parent",
                 "--chdir", str(self.work)]
        if is_root():
            args += ["--"] + setpriv_argv()
            # Nothing written in the scratch directory (shuffle and spill files) is ever run.
            # The work directory stays executable: a job's packed environment, unpacked there,
            # holds compiled extensions, which the kernel maps executable (executors run
            # users' code anyway; their boundary is the nested sandbox, not noexec).
            prefix = ["unshare", "--mount", "--propagation", "private", "--",
                      self.python, "-I", "-m", "dmarket_client.worker_sandbox", "--noexec",
                      str(self.local), "--"]
            return prefix + args + list(argv)
        args = [args[0], "--unshare-user", "--cap-drop", "ALL", *args[1:], "--"]
        return args + list(argv)

    def env(self, env, keep=()):
        """The worker's environment: the allowlist, `keep` (the market's executor settings),
        and what the sandbox sets."""
        out = {k: v for k, v in env.items() if k in PASS_ENV or k in keep}
        out.update({
            "PATH": os.pathsep.join([str(Path(self.python).parent), "/usr/local/bin",
                                     "/usr/bin", "/bin"]),
            "HOME": str(self.work), "TMPDIR": "/tmp", "JAVA_HOME": SHIM_HOME,
            "SPARK_LOCAL_DIRS": str(self.local),
            **self.spark_env,
        })
        return out

    def preexec(self):
        isolation.cgroups_join(self.cgroups)

    def cleanup(self):
        """End whatever of the worker's is left (a process that left its process group),
        then remove its cgroups."""
        for path in self.cgroups:
            try:
                pids = (Path(path) / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                (Path(p) / "cgroup.procs").exists() and (Path(p) / "cgroup.procs").read_text()
                .strip() for p in self.cgroups):
            time.sleep(0.1)
        isolation.cgroups_remove(self.cgroups)


# --- the shim: run as `java` inside the worker's sandbox --------------------------------------

def executor_argv(argv, config, environ, cwd):
    """The nested sandbox for one executor (argv: what the worker gave `java`). Anything else
    the worker starts (a cluster-mode driver) is refused: the market runs none."""
    if EXECUTOR_CLASS not in argv:
        raise SystemExit("dmarket: this worker starts executors only, not "
                         + " ".join(a for a in argv if a.startswith("org.apache"))[:200])
    app_id = argv[argv.index("--app-id") + 1] if "--app-id" in argv[:-1] else ""
    work, local = Path(config["work"]), Path(config["local"])
    app_dir = work / app_id
    if not APP_ID.match(app_id) or not Path(cwd).resolve().is_relative_to(app_dir):
        raise SystemExit(f"dmarket: refused an executor of {app_id!r} started in {cwd}")
    # Set by the worker itself, after the application's own variables.
    scratch = [p for p in environ.get("SPARK_EXECUTOR_DIRS", "").split(os.pathsep)
               if p and Path(p).resolve().is_relative_to(local)]
    args = [config["bwrap"], "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
            *isolation.system_args(), "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(TMP_MB * 1024 * 1024), "--tmpfs", "/tmp",
            *bind_args(ro=[(p, p) for p in config["readable"]]
                       + [(config["java_home"], EXECUTOR_JAVA)])]
    # Other applications' directories are not there; its own are.
    made = set()
    for path in (work, local):
        for parent in reversed(path.parents):
            if str(parent) != "/" and parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--tmpfs", str(path)]
        made.add(path)
    args += bind_args(rw=[(app_dir, app_dir)] + [(p, p) for p in scratch], made=made)
    args += executor_gpu_args(argv, config, cwd)
    args += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--chdir", cwd,
             "--", f"{EXECUTOR_JAVA}/bin/java", *argv]
    return args


def executor_gpu_args(argv, config, cwd):
    """The executor's own GPUs, from the resources file the worker gave it: their nodes (and
    the driver's control nodes), and VISIBLE_ENV naming them; nothing for one holding none.
    Only addresses this worker offers count: the file is in a directory the application
    can write."""
    offered = config.get("gpu_addresses") or []
    if not offered:
        return []
    held = gpus.executor_resources(argv, cwd).get(config.get("gpu_resource", gpus.GPU), [])
    # In the order CUDA numbers them in the sandbox, which shows it no other GPU: by PCI bus,
    # as nvidia-smi numbers them.
    own = sorted({a for a in held if a in offered}, key=int)
    if not own:
        return []
    return (gpu_bind_args(own, config.get("dev", "/dev"))
            + ["--setenv", gpus.VISIBLE_ENV, ",".join(own)]
            + ["--setenv", "CUDA_DEVICE_ORDER", gpus.CUDA_ORDER])


def noexec_then(paths, command):
    """As root, in a mount namespace of the agent's own: the paths mounted noexec, then exec."""
    for path in paths:
        subprocess.run(["mount", "--bind", path, path], check=True)
        subprocess.run(["mount", "-o", "remount,bind,noexec,nosuid,nodev", path], check=True)
    os.execvp(command[0], command)


def main(argv):
    if argv[:1] == ["--noexec"]:
        split = argv.index("--")
        noexec_then(argv[1:split], argv[split + 1:])
    if argv[:1] != ["--shim"]:
        raise SystemExit("usage: worker_sandbox.py --shim CONFIG JAVA-ARGS... | --noexec ...")
    with open(argv[1]) as f:
        config = json.load(f)
    command = executor_argv(argv[2:], config, os.environ, os.getcwd())
    os.execve(command[0], command, dict(os.environ))


if __name__ == "__main__":
    main(sys.argv[1:])
