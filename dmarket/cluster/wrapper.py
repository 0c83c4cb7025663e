"""Runs one job's driver (spark-submit) and keeps its exit code in a file.

    python -m dmarket.cluster.wrapper JOB_DIR -- spark-submit ARGS...

The launcher starts it in a session of its own, so the driver outlives a launcher that dies,
and a restarted launcher finds the outcome in JOB_DIR/exit_code. Its output goes to
JOB_DIR/driver.log. Plain Python, no Django: it must start fast and hold nothing.
"""

import os
import signal
import subprocess
import sys


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m dmarket.cluster.wrapper JOB_DIR -- COMMAND...\n")
        return 2
    job_dir, command = argv[0], argv[2:]
    # A cancel signals the whole process group; the wrapper lives on to record the outcome.
    # A handler (unlike SIG_IGN) is reset to the default in the child by exec.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    with open(os.path.join(job_dir, "driver.log"), "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=job_dir)
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
    tmp = os.path.join(job_dir, "exit_code.tmp")
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(job_dir, "exit_code"))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
