"""A test application: runs tasks on the executors for about --seconds, then writes what it
received and did to $DMARKET_OUTPUT_DIR/result.json. --fail raises after the session starts."""

import json
import os
import sys

from pyspark.sql import SparkSession


def option(name, default):
    args = sys.argv[1:]
    return type(default)(args[args.index(name) + 1]) if name in args else default


def main():
    seconds = option("--seconds", 2.0)
    tasks = option("--tasks", 4)
    spark = SparkSession.builder.appName("dmarket test app").getOrCreate()
    sc = spark.sparkContext
    print(f"started {sc.applicationId}", flush=True)
    if "--fail" in sys.argv:
        raise RuntimeError("deliberate failure in the driver")
    per_task = seconds * 2 / tasks

    def work(i):
        import socket
        import time

        time.sleep(per_task)
        return {"task": i, "host": os.environ.get("SPARK_LOCAL_IP", socket.gethostname())}

    done = sc.parallelize(range(tasks), tasks).map(work).collect()
    out = os.environ["DMARKET_OUTPUT_DIR"]
    os.makedirs(os.path.join(out, "nested"), exist_ok=True)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "tasks": done, "app_id": sc.applicationId}, f)
    with open(os.path.join(out, "nested", "note.txt"), "w") as f:
        f.write("nested result\n")
    print(f"finished {len(done)} tasks", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
