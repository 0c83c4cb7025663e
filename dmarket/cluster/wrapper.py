"""Runs one job's driver (spark-submit) and keeps its exit code in a file.

    python dmarket/cluster/wrapper.py [--cgroup DIR]... [--rlimit NAME=N]... [--shield-term]
        JOB_DIR -- COMMAND...

COMMAND is the sandbox (dmarket.cluster.sandbox) around spark-submit. The wrapper itself runs
outside it, as the launcher's user: the job cannot write its exit code. It joins the job's
cgroups itself, so that everything it starts is in them, and sets the rlimits in the command's
process only (its own exit code is written past a job's file limit).

A cancel's SIGTERM goes to the whole process group. With --shield-term, COMMAND starts with
SIGTERM ignored, which exec keeps: bubblewrap's own processes must outlive it (its outer
process has no handler, and its death kills the sandbox at once, --die-with-parent), and the
sandbox gives the default back to what it runs (env --default-signal=TERM), so that the
driver, not bubblewrap, gets the TERM: spark-submit's JVM runs its shutdown hooks (the
SparkContext stopped, its event log closed) and its exit code is the job's. The sandbox still
ends with its first process (bubblewrap exits with it): a Python driver, the JVM's child, has
until the JVM is gone, not the whole grace, where without a sandbox it may outlive the JVM.

The launcher starts it in a session of its own, so the driver outlives a launcher that dies,
and a restarted launcher finds the outcome in JOB_DIR/exit_code. Its output goes to
JOB_DIR/driver.log. Plain Python, no Django: it must start fast and hold nothing.
"""

import os
import resource
import signal
import subprocess
import sys
import time


def group_members(group=None):
    """The other live processes of a process group, by default this one's (Linux /proc; empty
    elsewhere)."""
    me = os.getpid()
    group = os.getpgid(0) if group is None else group
    members = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state, ppid, pgrp, ...; a zombie is already gone for our purpose.
        if int(fields[2]) == group and fields[0] != b"Z":
            members.append(int(entry))
    return members


def end_group(grace=3.0):
    """TERM the rest of the group (the wrapper ignores TERM), then KILL what stays."""
    if os.getpgid(0) != os.getpid() or not group_members():
        return
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_members():
        time.sleep(0.1)
    for pid in group_members():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


RLIMITS = {"nofile": resource.RLIMIT_NOFILE, "fsize": resource.RLIMIT_FSIZE,
           "nproc": resource.RLIMIT_NPROC, "as": resource.RLIMIT_AS}


def join(cgroups):
    for path in cgroups:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def limiter(rlimits, shield_term=False):
    """Set in the child only (the wrapper writes the exit code past a job's file limit)."""
    def apply():
        for name, value in rlimits:
            resource.setrlimit(RLIMITS[name], (value, value))
        if shield_term:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return apply


def parse(argv):
    cgroups, rlimits, shield_term = [], [], False
    while argv and (argv[0] == "--shield-term"
                    or len(argv) >= 2 and argv[0] in ("--cgroup", "--rlimit")):
        if argv[0] == "--shield-term":
            shield_term, argv = True, argv[1:]
            continue
        if argv[0] == "--cgroup":
            cgroups.append(argv[1])
        else:
            name, _, value = argv[1].partition("=")
            rlimits.append((name, int(value)))
        argv = argv[2:]
    if len(argv) < 3 or argv[1] != "--":
        return None
    return cgroups, rlimits, shield_term, argv[0], argv[2:]


def main(argv):
    parsed = parse(argv)
    if parsed is None:
        sys.stderr.write("usage: wrapper.py [--cgroup DIR]... [--rlimit NAME=N]... "
                         "[--shield-term] JOB_DIR -- COMMAND...\n")
        return 2
    cgroups, rlimits, shield_term, job_dir, command = parsed
    join(cgroups)
    # A cancel signals the whole process group; the wrapper lives on to record the outcome.
    # A handler (unlike SIG_IGN) is reset to the default in the child by exec.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    with open(os.path.join(job_dir, "driver.log"), "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=job_dir,
                                     preexec_fn=limiter(rlimits, shield_term))
        except OSError as e:
            log.write(f"dmarket: could not start the driver: {e}\n".encode())
            code = 127
        else:
            while True:
                try:
                    code = child.wait()
                    break
                except InterruptedError:
                    continue
    # A signal's death is reported as 128+N, as shells do.
    code = 128 - code if code < 0 else code
    # The job ends when nothing of it runs any more: the Python driver can outlive the JVM
    # that started it, and user code may leave children behind.
    end_group()
    tmp = os.path.join(job_dir, "exit_code.tmp")
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(job_dir, "exit_code"))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
