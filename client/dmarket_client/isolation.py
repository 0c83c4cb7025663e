"""What every sandbox of dmarket's is made of, with Linux alone and no Django: the drivers'
on the central server (dmarket.cluster.sandbox) and the workers' on contributors' machines
(dmarket_client.worker_sandbox) both use it."""

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# What every sandbox sees read-only where it exists; the merged-/usr links are made as links.
SYSTEM_RO = ["/usr", "/etc", "/opt"]
USR_LINKS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]


def system_args():
    """bubblewrap's arguments for the read-only system (and the merged-/usr links)."""
    args = []
    for path in SYSTEM_RO:
        if os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in USR_LINKS:
        target = Path("/") / name
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    return args


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


def cgroups_create(name, memory_mb=0, max_procs=0):
    """Make the cgroups of the sandbox `name`; returns (the directories to join, what could
    not be limited). Never raises: what cannot be limited is said, and rlimits stay."""
    dirs = []
    wanted = {"memory": memory_mb, "pids": max_procs}
    if not any(wanted.values()):
        return dirs, []
    for kind, path in cgroup_dirs(name).items():
        try:
            path.mkdir(exist_ok=True)
            if kind == "memory" and memory_mb:
                limit = memory_mb * 1024 * 1024
                _write(path / "memory.limit_in_bytes", limit)
                if (path / "memory.memsw.limit_in_bytes").exists():
                    _write(path / "memory.memsw.limit_in_bytes", limit)
            elif kind == "pids" and max_procs:
                _write(path / "pids.max", max_procs)
            elif kind == "v2":
                if memory_mb:
                    _write(path / "memory.max", memory_mb * 1024 * 1024)
                    if (path / "memory.swap.max").exists():
                        _write(path / "memory.swap.max", 0)
                if max_procs:
                    _write(path / "pids.max", max_procs)
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


def cgroups_join(dirs):
    """Move this process into the cgroups (a child before its exec: all it starts stays)."""
    for path in dirs:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
