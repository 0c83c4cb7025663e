"""Every driver process starts here, in a sandbox: regular jobs' drivers (through the
wrapper, which keeps their exit code) and the inference server's driver.

The sandbox is bubblewrap (Debian's `bubblewrap`) with what Linux gives:
- an identity that owns nothing of the server: the system user DMARKET_SANDBOX_USER when the
  server runs as root (bwrap makes the mounts as root, setpriv then drops to that user with no
  capabilities and no_new_privs), the server's own uid inside a user namespace otherwise;
- a filesystem of its own: the system (/usr, /etc), Python, Spark and Java read-only, the
  paths a profile names, a private /tmp in memory, and nothing else (no data directory, no
  database file, no secret key, no file store, no other job);
- its own PID and IPC namespaces: it sees and signals only its own processes, and when
  its first process ends the kernel ends every other one, sessions of their own included;
- an environment built from an allowlist, never the server's;
- limits: memory and processes through a cgroup of its own where one can be made (v1 or
  v2), open files and the size of any file it writes through rlimits;
- the host's network, less the database and the Spark UIs (nftables, as root).
Each job's runtime limit and its results' quota are the launcher's (dmarket.cluster.launcher).
"""

import functools
import logging
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

# What every sandbox sees read-only where it exists; the merged-/usr links are made as links.
SYSTEM_RO = ["/usr", "/etc", "/opt"]
USR_LINKS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]
# The launcher's environment variables a driver may get, none of them secret.
PASS_ENV = ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "JAVA_HOME", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"]
NFT_TABLE = "dmarket_sandbox"


class Unavailable(Exception):
    """No sandbox can be made on this host; the message says why and what to do."""


@dataclass
class Profile:
    """What one sandbox sees and may do."""
    name: str                      # names its cgroup: "job-12", "inference"
    env: dict
    chdir: Path
    readable: list = field(default_factory=list)
    writable: list = field(default_factory=list)
    # "user": the sandbox identity (users' code); "server": the server's own (market code
    # that needs the database, e.g. the inference server's driver).
    identity: str = "user"
    memory_mb: int = 0             # 0: no memory limit
    max_procs: int = 0
    max_open_files: int = 0
    max_file_mb: int = 0           # the largest file it may write (RLIMIT_FSIZE)
    tmp_mb: int = 0


def enabled():
    return settings.DMARKET_SANDBOX != "off"


def is_root():
    return os.geteuid() == 0


@functools.lru_cache(maxsize=8)
def _probe(bwrap, root, user):
    """Why no sandbox can be made here ("" when one can), tried for real once per process."""
    if not bwrap:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if root:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return (f"the sandbox user {user!r} does not exist: run ./install.sh as root, or "
                    f"useradd --system {user}")
        if not shutil.which("setpriv"):
            return "setpriv (util-linux) is not installed"
        argv = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--", "true"]
    else:
        argv = [bwrap, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap does not run here: {e}"
    if done.returncode != 0:
        text = done.stderr.decode(errors="replace").strip()[-300:]
        hint = "" if root else " (unprivileged user namespaces may be disabled)"
        return f"bubblewrap cannot make a sandbox here{hint}: {text}"
    return ""


def check():
    """(mode, problem): mode "root", "userns" or "off"; problem empty when a sandbox can be
    made (or the operator turned it off)."""
    if not enabled():
        return "off", ""
    problem = _probe(shutil.which("bwrap") or "", is_root(), settings.DMARKET_SANDBOX_USER)
    return ("root" if is_root() else "userns"), problem


def require():
    mode, problem = check()
    if problem:
        raise Unavailable(problem)
    return mode


def sandbox_ids():
    entry = pwd.getpwnam(settings.DMARKET_SANDBOX_USER)
    return entry.pw_uid, entry.pw_gid


def sandbox_owner():
    """(uid, gid) the sandbox's files are given to, or None where they stay the server's."""
    return sandbox_ids() if is_root() and enabled() else None


def give_to_sandbox(*paths):
    """Make directories the sandbox writes into its identity's (as root; otherwise they are
    already the server's uid, which the user namespace maps)."""
    for path in paths:
        Path(path).mkdir(parents=True, exist_ok=True)
        if is_root() and enabled():
            uid, gid = sandbox_ids()
            os.chown(path, uid, gid)


def _real(path):
    return Path(os.path.realpath(path))


def system_paths():
    """Read-only paths every driver needs: Python (the venv and its base), Spark, Java."""
    from .spark import spark_home

    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, _real(sys.executable).parent.parent,
             _real(spark_home())]
    java = shutil.which("java")
    if java:
        paths.append(_real(java).parent.parent)
    if os.environ.get("JAVA_HOME"):
        paths.append(os.environ["JAVA_HOME"])
    paths += settings.DMARKET_SANDBOX_RO_PATHS
    if settings.DMARKET_SPARK_CONF_DIR:
        paths.append(settings.DMARKET_SPARK_CONF_DIR)
    return paths


def _covered(path, roots):
    return any(path == root or root in path.parents for root in roots)


def bwrap_argv(profile):
    """bubblewrap's argv (up to and including the '--' before the command)."""
    args = ["bwrap"]
    made = set()

    def parents(path):
        # bwrap makes missing parents with the mode of... nothing a user can traverse; make
        # each one 0755 first, so the sandbox user can reach what is bound below it.
        for parent in reversed(path.parents):
            if str(parent) == "/" or parent in made or _covered(parent, ro_system):
                continue
            made.add(parent)
            args.extend(["--perms", "0755", "--dir", str(parent)])

    ro_system = [Path(p) for p in SYSTEM_RO if os.path.isdir(p)]
    for path in ro_system:
        args += ["--ro-bind", str(path), str(path)]
        made.add(path)
    for name in USR_LINKS:
        target = Path("/") / name
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # Both in memory: sized, so that they cannot fill it where no cgroup limits the job.
    for path in ("/dev/shm", "/tmp"):
        args += ["--perms", "1777"]
        if profile.tmp_mb:
            args += ["--size", str(profile.tmp_mb * 1024 * 1024)]
        args += ["--tmpfs", path]
    made.add(Path("/tmp"))
    ro = []
    for path in system_paths() + list(profile.readable):
        path = Path(path)
        if path.exists() and not _covered(path, ro_system) and path not in ro:
            ro.append(path)
    # Shortest first, so that a path bound below another is not hidden by it.
    for path in sorted(ro, key=lambda p: len(p.parts)):
        if _covered(path, [p for p in ro if p != path and len(p.parts) < len(path.parts)]):
            continue
        parents(path)
        args += ["--ro-bind", str(path), str(path)]
        made.add(path)
    for path in sorted((Path(p) for p in profile.writable), key=lambda p: len(p.parts)):
        parents(path)
        args += ["--bind", str(path), str(path)]
        made.add(path)
    # The host's name stays: Spark resolves it, and it is in the host's /etc/hosts.
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-cgroup-try", "--die-with-parent",
             "--chdir", str(profile.chdir)]
    if not is_root():
        args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    elif profile.identity == "server":
        # The market's own code, as root: at least without root's capabilities (no firewall
        # changes, no modules, no reading past file modes).
        args += ["--cap-drop", "ALL"]
    # The environment is the profile's alone: the wrapper gets it and passes it on.
    args.append("--")
    if is_root() and profile.identity == "user":
        user = settings.DMARKET_SANDBOX_USER
        args += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return args


def base_env():
    """The allowlisted part of every driver's environment."""
    env = {name: os.environ[name] for name in PASS_ENV + settings.DMARKET_SANDBOX_PASS_ENV
           if name in os.environ}
    env.update({
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                 "/usr/bin", "/bin"]),
        "TMPDIR": "/tmp",
        "PYTHONUNBUFFERED": "1",
        # The venv is read-only in there.
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


# --- cgroups ----------------------------------------------------------------------------------

def _own_cgroup(controller):
    """This process's cgroup path for a v1 controller, or for v2 ("")."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return None


def cgroup_dirs(name):
    """Where this sandbox's cgroups go: {"memory": dir, "pids": dir} (v1) or {"v2": dir}."""
    root = Path("/sys/fs/cgroup")
    leaf = f"dmarket-{name}"
    found = {}
    for controller in ("memory", "pids"):
        base = root / controller
        own = _own_cgroup(controller)
        if own is not None and (base / "cgroup.procs").exists():
            found[controller] = base / own.lstrip("/") / leaf
    if not found and (root / "cgroup.controllers").exists():
        own = _own_cgroup("")
        if own is not None:
            found["v2"] = root / own.lstrip("/") / leaf
    return found


def _write(path, value):
    Path(path).write_text(str(value))


def cgroups_create(profile):
    """Make the profile's cgroups; returns (the directories to join, what could not be
    limited). Never raises: what cannot be limited is said, and rlimits stay."""
    dirs = []
    wanted = {"memory": profile.memory_mb, "pids": profile.max_procs}
    if not any(wanted.values()):
        return dirs, []
    for kind, path in cgroup_dirs(profile.name).items():
        try:
            path.mkdir(exist_ok=True)
            if kind == "memory" and profile.memory_mb:
                limit = profile.memory_mb * 1024 * 1024
                _write(path / "memory.limit_in_bytes", limit)
                if (path / "memory.memsw.limit_in_bytes").exists():
                    _write(path / "memory.memsw.limit_in_bytes", limit)
            elif kind == "pids" and profile.max_procs:
                _write(path / "pids.max", profile.max_procs)
            elif kind == "v2":
                if profile.memory_mb:
                    _write(path / "memory.max", profile.memory_mb * 1024 * 1024)
                    if (path / "memory.swap.max").exists():
                        _write(path / "memory.swap.max", 0)
                if profile.max_procs:
                    _write(path / "pids.max", profile.max_procs)
            dirs.append(path)
            wanted.pop(kind, None)
            if kind == "v2":
                wanted.clear()
        except OSError as e:
            log.debug("cgroup %s: %s", path, e)
            try:
                path.rmdir()
            except OSError:
                pass
    missing = [kind for kind, value in wanted.items() if value]
    return dirs, missing


def cgroups_remove(dirs):
    for path in dirs:
        try:
            Path(path).rmdir()
        except OSError:
            pass


def cgroup_oom(dirs):
    """Whether the kernel killed a process of these cgroups for passing the memory limit."""
    for path in map(Path, dirs):
        for name in ("memory.oom_control", "memory.events"):
            try:
                text = (path / name).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip() not in ("", "0"):
                    return True
    return False


def rlimit_args(profile):
    """The wrapper's --rlimit options (it sets them in the sandbox's first process, not on
    itself: it writes the exit code past a job's file limit)."""
    out = []
    if profile.max_open_files:
        out += ["--rlimit", f"nofile={profile.max_open_files}"]
    if profile.max_file_mb:
        out += ["--rlimit", f"fsize={profile.max_file_mb * 1024 * 1024}"]
    return out


# --- network ----------------------------------------------------------------------------------

def blocked_ports(worker_uis=()):
    """Ports no driver may connect to, on any address: the database's, the master's and the
    history server's web UIs (the master's can kill any application; the history shows every
    application's properties), the local workers' UIs (their executors' logs), and the
    operator's list."""
    ports = []
    db = settings.DATABASES["default"]
    if db.get("ENGINE", "").endswith("postgresql"):
        ports.append(int(db.get("PORT") or 5432))
    for url in (settings.DMARKET_SPARK_MASTER_UI, settings.DMARKET_HISTORY_URL, *worker_uis):
        port = urlsplit(url).port
        if port:
            ports.append(port)
    for item in settings.DMARKET_SANDBOX_BLOCKED:
        port = item.rpartition(":")[2]
        if port.isdigit():
            ports.append(int(port))
    return sorted(set(ports))


def served_ports():
    """Ports of the market's services, which the sandbox may reach but never listen on (a
    driver holding the master's or the web server's port while it restarts would answer the
    launcher in its place)."""
    ports = [urlsplit(settings.DMARKET_SPARK_MASTER_URL.replace("spark://", "http://")).port,
             urlsplit(settings.DMARKET_PUBLIC_URL).port or 80]
    return sorted({p for p in ports if p})


def nft_rules(uid, ports, served=()):
    """Refused to the sandbox user: connecting to `ports` on any address (a service on this
    host listens on all its addresses; a host name would tie the rule to DNS), and answering
    from `ports` or `served` (taking a service's place)."""
    lines = [f"table inet {NFT_TABLE} {{", "  chain output {",
             "    type filter hook output priority 0; policy accept;"]
    for port in sorted(set(ports) | set(served)):
        lines.append(f"    meta skuid {uid} tcp sport {port} drop")
    lines.append(f"    meta skuid {uid} ct state established,related accept")
    for port in sorted(set(ports)):
        lines.append(f"    meta skuid {uid} tcp dport {port} reject with tcp reset")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


_applied = {}


def network_apply(worker_uis=()):
    """Install (or refresh) the nftables rules for the sandbox user; returns a problem or ""
    (as root; not as root the network cannot be filtered, which doc/security.md says)."""
    if not (is_root() and enabled()):
        return ""
    nft = shutil.which("nft")
    if not nft:
        return "nftables (nft) is not installed: apt-get install nftables"
    uid, _ = sandbox_ids()
    rules = nft_rules(uid, blocked_ports(worker_uis), served_ports())
    if _applied.get("rules") == rules:
        return ""
    script = f"table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n{rules}"
    done = subprocess.run([nft, "-f", "-"], input=script.encode(), capture_output=True)
    if done.returncode != 0:
        return "not filtered: nft: " + done.stderr.decode(errors="replace").strip()[-200:]
    _applied["rules"] = rules
    return ""


# --- starting ---------------------------------------------------------------------------------

def wrapped_argv(profile, command, job_dir, cgroups):
    """The whole argv: the wrapper (outside: it records the exit code, joins the cgroups,
    sets the rlimits of what it starts), bubblewrap, and the command."""
    from . import wrapper

    argv = [sys.executable, wrapper.__file__]
    for path in cgroups:
        argv += ["--cgroup", str(path)]
    argv += rlimit_args(profile) + [str(job_dir), "--"]
    if enabled():
        argv += bwrap_argv(profile)
    return argv + list(command)


def popen(argv, env, cwd, log_path):
    """Start it in a session of its own (it outlives the daemon that started it)."""
    with open(log_path, "ab") as output:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=output, start_new_session=True)


def start(profile, command, job_dir, log_path, note=None):
    """Start `command` in the profile's sandbox under the wrapper, which writes its exit code
    to job_dir. Returns (the wrapper's Popen, its cgroup directories, what is not limited).
    note(what is not limited), if given, is written to the log first.
    Raises Unavailable when no sandbox can be made (and the operator did not turn it off)."""
    if enabled():
        require()
    cgroups, unlimited = cgroups_create(profile) if enabled() else ([], [])
    if note is not None:
        with open(log_path, "ab") as output:
            output.write(note(unlimited).encode())
    env = {name: str(value) for name, value in profile.env.items()}
    argv = wrapped_argv(profile, command, job_dir, cgroups)
    try:
        child = popen(argv, env, profile.chdir if not enabled() else job_dir, log_path)
    except OSError:
        cgroups_remove(cgroups)
        raise
    return child, cgroups, unlimited
