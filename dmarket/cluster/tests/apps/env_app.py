"""A test application that needs the package dmkprobe, which the workers' default Python does
not have: it runs only in an environment that holds it. With a working directory (`wdmod.py`
and `data/values.txt` in it), the driver and each executor read its files by relative paths
and import its module."""

import json
import os
import sys

from pyspark.sql import SparkSession


def probe(task):
    import os

    out = {"task": task, "cwd_files": sorted(os.listdir("."))}
    try:
        import dmkprobe

        out["probe"] = dmkprobe.hello()
    except ImportError as e:
        out["probe"] = f"ImportError: {e}"
    if os.path.exists("wdmod.py"):
        import wdmod

        with open(os.path.join("data", "values.txt")) as f:
            out["values"] = f.read().split()
        out["wdmod"] = wdmod.name()
    return out


def main():
    spark = SparkSession.builder.appName("dmarket env test app").getOrCreate()
    rows = spark.sparkContext.parallelize(range(2), 2).map(probe).collect()
    driver = probe("driver")
    with open(os.path.join(os.environ["DMARKET_OUTPUT_DIR"], "result.json"), "w") as f:
        json.dump({"rows": rows, "driver": driver, "argv": sys.argv[1:],
                   "partitions": spark.conf.get("spark.sql.shuffle.partitions")}, f)
    spark.stop()
    # The job's success is its driver's exit code: it fails where the package is missing.
    if any(r["probe"].startswith("ImportError") for r in rows + [driver]):
        raise SystemExit(f"dmkprobe is missing: {[r['probe'] for r in rows + [driver]]}")


if __name__ == "__main__":
    main()
