"""A test application that comes from the file store, with everything it reads: its helper
module (a lib), a data archive unpacked as data/, a settings file, and, for a second run, the
model archive that the first run wrote to its results (unpacked as model/)."""

import json
import os
import zipfile

import fhelper
from pyspark.sql import SparkSession


def read_inputs(task):
    import os

    import fhelper

    # Spark puts --files and unpacked --archives in each executor's working directory.
    with open(os.path.join("data", "values.txt")) as f:
        values = f.read().split()
    with open("settings.json") as f:
        settings = json.load(f)
    model = None
    if os.path.isdir("model"):
        with open(os.path.join("model", "weights.txt")) as f:
            model = f.read()
    return {"task": task, "host": os.environ.get("SPARK_LOCAL_IP", ""),
            "helper": fhelper.greet(task), "values": values, "settings": settings,
            "model": model}


def main():
    spark = SparkSession.builder.appName("dmarket files test app").getOrCreate()
    sc = spark.sparkContext
    rows = sc.parallelize(range(2), 2).map(read_inputs).collect()
    out = os.environ["DMARKET_OUTPUT_DIR"]
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump({"rows": rows, "driver": fhelper.greet("driver")}, f)
    # The "trained model": an archive that the next job can name as
    # dmarket://jobs/ID/results/model.zip#model.
    with zipfile.ZipFile(os.path.join(out, "model.zip"), "w") as z:
        z.writestr("weights.txt", f"trained by {sc.applicationId}")
    print(f"read inputs on {sorted({r['host'] for r in rows})}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
