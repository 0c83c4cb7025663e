"""Estimates pi with Spark: the smallest real job for the market.

Usage: pi.py [PARTITIONS]. Writes result.json into $DMARKET_OUTPUT_DIR (the job's results).
"""

import json
import os
import random
import sys
from operator import add

from pyspark.sql import SparkSession


def inside(_):
    x, y = random.random() * 2 - 1, random.random() * 2 - 1
    return 1 if x * x + y * y <= 1 else 0


def main():
    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    samples = 100_000 * partitions
    spark = SparkSession.builder.appName("pi").getOrCreate()
    count = spark.sparkContext.parallelize(range(samples), partitions).map(inside).reduce(add)
    estimate = 4.0 * count / samples
    print(f"Pi is roughly {estimate}")
    out = os.environ.get("DMARKET_OUTPUT_DIR")
    if out:
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump({"pi": estimate, "samples": samples, "argv": sys.argv[1:]}, f)
    spark.stop()


if __name__ == "__main__":
    main()
