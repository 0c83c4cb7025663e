"""A cancel reaching a driver inside its real sandbox (bubblewrap), started as the launcher
starts every driver (sandbox.start: the wrapper, bubblewrap, the command) and stopped as the
launcher stops it (job_signal's SIGTERM to the process group, then driver_kill).

The SIGTERM must reach the driver, not bubblewrap: bubblewrap's outer process has no handler,
and once it dies --die-with-parent kills everything in the sandbox at once, so the driver would
get no grace and the job would record 143 whatever the driver did."""

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dmarket.cluster import sandbox
from dmarket.cluster.launcher import driver_kill
from dmarket.cluster.wrapper import group_members

# A driver that cleans up on SIGTERM for half a second, then exits with its own code; or,
# with "ignore", one that ignores SIGTERM.
DRIVER = """#!/bin/sh
if [ "$1" = ignore ]; then trap '' TERM; else
  trap 'echo term >> "$OUT/marker"; sleep 0.5; echo cleaned >> "$OUT/marker"; exit 7' TERM
fi
echo started > "$OUT/marker"
while :; do sleep 0.1; done
"""


def commands(pids):
    names = set()
    for pid in pids:
        try:
            names.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            pass  # ended meanwhile (the driver's sleeps)
    return names


@pytest.fixture
def sandboxed(settings):
    """start(*args): the driver started in a sandbox of the users' identity; returns the
    wrapper's Popen, the driver's output directory and the wrapper's job directory."""
    settings.DMARKET_SANDBOX = "auto"
    _, problem = sandbox.check()
    if problem:
        pytest.skip(problem)
    # Outside pytest's tmp_path, whose parents only root may traverse: the sandbox's user
    # must read the driver and write its marker.
    top = Path(tempfile.mkdtemp(prefix="dmarket-wrapper-"))
    top.chmod(0o755)
    code, out, job_dir = top / "code", top / "out", top / "job"
    code.mkdir(mode=0o755)
    job_dir.mkdir()
    (code / "driver.sh").write_text(DRIVER)
    (code / "driver.sh").chmod(0o755)
    sandbox.give_to_sandbox(out)
    started = []

    def start(*args):
        profile = sandbox.Profile(name=f"wrapper-test-{os.getpid()}-{len(started)}",
                                  env={"PATH": "/usr/bin:/bin", "OUT": str(out)}, chdir=out,
                                  readable=[code], writable=[out])
        child, cgroups, _ = sandbox.start(profile, [str(code / "driver.sh"), *args], job_dir,
                                          job_dir / "driver.log")
        started.append((child, cgroups))
        deadline = time.monotonic() + 10
        while not (out / "marker").exists():
            assert time.monotonic() < deadline, (job_dir / "driver.log").read_text()
            time.sleep(0.02)
        return child, out, job_dir

    yield start
    for child, cgroups in started:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the wrapper leads its group
        except ProcessLookupError:
            pass
        child.wait(timeout=10)
        sandbox.cgroups_remove(cgroups)
    shutil.rmtree(top, ignore_errors=True)


def test_a_cancels_sigterm_gives_the_sandboxed_driver_its_grace_and_its_exit_code(sandboxed):
    child, out, job_dir = sandboxed()

    os.killpg(child.pid, signal.SIGTERM)  # the launcher's job_signal
    child.wait(timeout=10)

    assert (out / "marker").read_text() == "started\nterm\ncleaned\n"
    assert (job_dir / "exit_code").read_text() == "7\n"
    assert group_members(child.pid) == []


def test_a_sandboxed_driver_that_ignores_sigterm_is_killed_and_137_recorded(sandboxed):
    child, out, job_dir = sandboxed("ignore")

    os.killpg(child.pid, signal.SIGTERM)
    time.sleep(0.5)
    # Bubblewrap and the driver outlived the SIGTERM; the wrapper waits on.
    assert child.poll() is None
    assert {"bwrap", "driver.sh"} <= commands(group_members(child.pid))
    driver_kill(SimpleNamespace(driver_pid=child.pid))  # the launcher's, after the grace
    child.wait(timeout=10)

    assert (job_dir / "exit_code").read_text() == "137\n"
    assert group_members(child.pid) == []
