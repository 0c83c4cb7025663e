"""A job that pushes one limit of its sandbox: `memory MB`, `threads N`, `files N`,
`disk MB` (1 MB files into its results), `bigfile MB` (one file), `sleep SECONDS`. It starts no Spark session. What it
reached goes to $DMARKET_OUTPUT_DIR/report.json (as far as it got)."""

import json
import os
import sys
import threading
import time


def report(**values):
    with open(os.path.join(os.environ["DMARKET_OUTPUT_DIR"], "report.json"), "w") as f:
        json.dump(values, f)


def main():
    what, amount = sys.argv[1], int(sys.argv[2])
    if what == "memory":
        chunks = []
        for i in range(amount):
            chunks.append(bytearray(1024 * 1024))
            for j in range(0, len(chunks[-1]), 4096):
                chunks[-1][j] = 1
        report(memory_mb=len(chunks))
    elif what == "threads":
        stop = threading.Event()
        started, error = 0, ""
        try:
            for _ in range(amount):
                threading.Thread(target=stop.wait, daemon=True).start()
                started += 1
        except RuntimeError as e:
            error = str(e)
        stop.set()
        report(threads=started, error=error)
    elif what == "files":
        handles, error = [], ""
        try:
            for _ in range(amount):
                handles.append(open("/dev/null"))
        except OSError as e:
            error = str(e)
        opened = len(handles)
        for handle in handles:
            handle.close()
        report(files=opened, error=error)
    elif what == "disk":
        out = os.environ["DMARKET_OUTPUT_DIR"]
        for i in range(amount):
            with open(os.path.join(out, f"part-{i}"), "wb") as f:
                f.write(os.urandom(1024 * 1024))
        report(disk_mb=amount)
        time.sleep(60)
    elif what == "bigfile":
        path, error = os.path.join(os.environ["DMARKET_OUTPUT_DIR"], "big"), ""
        try:
            with open(path, "wb", buffering=0) as f:
                for _ in range(amount):
                    f.write(b"x" * 1024 * 1024)
        except OSError as e:
            error = str(e)
        size = os.path.getsize(path)
        os.remove(path)
        report(size=size, error=error)
    elif what == "sleep":
        time.sleep(amount)
        report(slept=amount)


if __name__ == "__main__":
    main()
