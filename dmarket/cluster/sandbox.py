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
import hashlib
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
from dmarket_client import isolation
from dmarket_client.isolation import SYSTEM_RO, cgroup_dirs, cgroup_oom, cgroups_remove  # noqa: F401

log = logging.getLogger(__name__)

# The launcher's environment variables a driver may get, none of them secret.
PASS_ENV = ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "JAVA_HOME", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"]
NFT_TABLE = "dmarket_sandbox"
# What every sandbox runs first, around its command: a cancel's SIGTERM is for the command, not
# for bubblewrap, which starts with it ignored (wrapper.py --shield-term says why). env is
# found on the profile's PATH, inside; --default-signal needs coreutils 8.31 or later.
RESTORE_TERM = ["env", "--default-signal=TERM"]


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
        argv = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--"]
    else:
        argv = [bwrap, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--"]
    argv += RESTORE_TERM + ["true"]
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
    made.update(ro_system)
    args += isolation.system_args()
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


# --- cgroups (dmarket_client.isolation: the workers' sandboxes make theirs the same way) --------

def cgroups_create(profile):
    """Make the profile's cgroups: (the directories to join, what could not be limited)."""
    return isolation.cgroups_create(profile.name, profile.memory_mb, profile.max_procs)


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
    application's properties), the local workers' UIs (their executors' logs), the file
    store's unauthenticated servers, and the operator's list."""
    ports = []
    db = settings.DATABASES["default"]
    if db.get("ENGINE", "").endswith("postgresql"):
        ports.append(int(db.get("PORT") or 5432))
    for url in (settings.DMARKET_SPARK_MASTER_UI, settings.DMARKET_HISTORY_URL, *worker_uis):
        port = urlsplit(url).port
        if port:
            ports.append(port)
    # The store's servers that answer without authentication (SeaweedFS's master, filer and
    # volume servers): a job reaches the store only through the URLs its credential buys.
    for item in (*settings.DMARKET_SANDBOX_BLOCKED, *settings.DMARKET_STORAGE_INTERNAL):
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


def nft_rules(uid, ports, served=(), worker_uid=None):
    """Refused to the sandbox user: connecting to `ports` on any address (a service on this
    host listens on all its addresses; a host name would tie the rule to DNS), and answering
    from `ports` or `served` (taking a service's place). To the user of a machine's worker on
    this host (its executors run users' code), connecting to `ports` too (it answers from its
    own UI's port, one of them)."""
    lines = [f"table inet {NFT_TABLE} {{", "  chain output {",
             "    type filter hook output priority 0; policy accept;"]
    for port in sorted(set(ports) | set(served)):
        lines.append(f"    meta skuid {uid} tcp sport {port} drop")
    lines.append(f"    meta skuid {uid} ct state established,related accept")
    for port in sorted(set(ports)):
        lines.append(f"    meta skuid {uid} tcp dport {port} reject with tcp reset")
    if worker_uid is not None:
        lines.append(f"    meta skuid {worker_uid} ct state established,related accept")
        for port in sorted(set(ports)):
            lines.append(f"    meta skuid {worker_uid} tcp dport {port} reject with tcp reset")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def network_apply(worker_uis=()):
    """Install (or refresh) the nftables rules for the sandbox user; returns a problem or ""
    (as root; not as root the network cannot be filtered, which doc/security.md says).

    Checked against the live table each time, not a memory of having applied them: a firewall
    reload (`nft flush ruleset`, a restart of nftables) or another launcher on this host may
    have replaced them, and the sandbox would run unfiltered."""
    if not (is_root() and enabled()):
        return ""
    nft = shutil.which("nft")
    if not nft:
        return "nftables (nft) is not installed: apt-get install nftables"
    uid, _ = sandbox_ids()
    try:
        worker_uid = pwd.getpwnam(settings.DMARKET_WORKER_USER).pw_uid
    except KeyError:
        worker_uid = None
    rules = nft_rules(uid, blocked_ports(worker_uis), served_ports(), worker_uid)
    # The last rule counts the sandbox's packets and names these rules' digest, for the check.
    mark = "dmarket-rules-" + hashlib.sha256(rules.encode()).hexdigest()[:16]
    listed = subprocess.run([nft, "list", "table", "inet", NFT_TABLE], capture_output=True)
    if listed.returncode == 0 and f'"{mark}"'.encode() in listed.stdout:
        return ""
    marked = rules.replace("  }\n}\n", f'    meta skuid {uid} counter comment "{mark}"\n  }}\n}}\n')
    script = f"table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n{marked}"
    done = subprocess.run([nft, "-f", "-"], input=script.encode(), capture_output=True)
    if done.returncode != 0:
        return "not filtered: nft: " + done.stderr.decode(errors="replace").strip()[-200:]
    return ""


# --- starting ---------------------------------------------------------------------------------

def wrapped_argv(profile, command, job_dir, cgroups):
    """The whole argv: the wrapper (outside: it records the exit code, joins the cgroups,
    sets the rlimits of what it starts), bubblewrap, and the command."""
    from . import wrapper

    argv = [sys.executable, wrapper.__file__]
    for path in cgroups:
        argv += ["--cgroup", str(path)]
    argv += rlimit_args(profile) + (["--shield-term"] if enabled() else [])
    argv += [str(job_dir), "--"]
    if enabled():
        argv += bwrap_argv(profile) + RESTORE_TERM
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
