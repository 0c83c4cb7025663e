"""A test application: each task says where it ran and which GPUs it was given
(TaskContext.resources()), and what its executor's sandbox told it of its GPUs; written to
$DMARKET_OUTPUT_DIR/result.json."""

import json
import os
import sys

from pyspark.sql import SparkSession


def main():
    tasks = int(sys.argv[sys.argv.index("--tasks") + 1]) if "--tasks" in sys.argv else 2
    spark = SparkSession.builder.appName("dmarket gpu test app").getOrCreate()
    sc = spark.sparkContext

    def look(i):
        import glob
        import time

        from pyspark import TaskContext

        time.sleep(2)
        resources = TaskContext.get().resources()
        gpu = resources.get("gpu")
        return {"task": i, "host": os.environ.get("SPARK_LOCAL_IP", ""),
                "gpus": list(gpu.addresses) if gpu else [],
                "resources": sorted(resources),
                "executor_gpus": os.environ.get("DMARKET_EXECUTOR_GPUS", ""),
                "devices": sorted(glob.glob("/dev/nvidia*"))}

    done = sc.parallelize(range(tasks), tasks).map(look).collect()
    with open(os.path.join(os.environ["DMARKET_OUTPUT_DIR"], "result.json"), "w") as f:
        json.dump({"app_id": sc.applicationId, "tasks": done}, f)
    print(f"finished {len(done)} tasks", flush=True)


if __name__ == "__main__":
    main()
