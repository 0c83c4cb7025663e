"""The benchmark's job (bench/environments.py): two executors each sum a range and, where the
job's environment holds it, read dmkprobe's payload; the driver too."""

import os
import time

from pyspark.sql import SparkSession


def work(part):
    total = sum(range(2_000_000))
    try:
        import dmkprobe

        with open(os.path.join(os.path.dirname(dmkprobe.__file__), "payload.txt")) as f:
            total += len(f.read())
    except ImportError:
        pass
    return total


def main():
    spark = SparkSession.builder.appName("dmarket env bench").getOrCreate()
    start = time.perf_counter()
    print(spark.sparkContext.parallelize(range(2), 2).map(work).collect(),
          f"{time.perf_counter() - start:.2f} s", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
