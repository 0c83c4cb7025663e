"""A curious job: its executors try what an executor must not do on a contributor's machine,
and the driver writes what each attempt got to $DMARKET_OUTPUT_DIR/report.json. argv[1] is a
JSON object: files to read, directories to list, and {name: megabytes} to allocate, each
in one task."""

import json
import os
import sys

from pyspark.sql import SparkSession


def attempt(action):
    try:
        return {"ok": True, "got": str(action())[:300]}
    except Exception as e:  # noqa: BLE001 - every failure is the answer
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}


def look(targets):
    def run(_):
        out = {"uid": os.getuid(), "env": sorted(os.environ), "cwd": os.getcwd(),
               "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
        out["read"] = {p: attempt(lambda p=p: open(p, "rb").read(64)) for p in targets["read"]}
        out["list"] = {p: attempt(lambda p=p: os.listdir(p)) for p in targets["list"]}
        # What the work directory (the parent of its application's) holds.
        out["work"] = attempt(lambda: os.listdir(os.path.dirname(os.path.dirname(os.getcwd()))))
        return [json.dumps(out)]
    return run


def allocate(mb):
    def run(_):
        block = bytearray(mb * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return [len(block)]
    return run


def main():
    targets = json.loads(sys.argv[1])
    spark = SparkSession.builder.appName("curious").getOrCreate()
    sc = spark.sparkContext
    report = {"executor": json.loads(sc.parallelize([0], 1).mapPartitions(look(targets))
                                     .collect()[0])}
    for name, mb in targets["allocate_mb"].items():
        report[f"allocate_{name}"] = attempt(lambda mb=mb: sc.parallelize([0], 1)
                                             .mapPartitions(allocate(mb)).collect())
    with open(os.path.join(os.environ["DMARKET_OUTPUT_DIR"], "report.json"), "w") as f:
        json.dump(report, f)
    spark.stop()


if __name__ == "__main__":
    main()
