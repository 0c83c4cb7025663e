"""A hostile job: tries, from its driver, each thing a job must not do, and writes what each
attempt got to $DMARKET_OUTPUT_DIR/report.json. argv[1] is a JSON object of targets:
files to read, directories to list, paths to write, pids to signal, host:port addresses to
connect to, URLs to fetch, a foreign application id to claim. With "spark": true it then starts its Spark
session (after claiming the foreign id in its log and its event directory) and runs a while.
"""

import json
import os
import socket
import subprocess
import sys
import time


def attempt(action):
    try:
        return {"ok": True, "got": str(action())[:200]}
    except Exception as e:  # noqa: BLE001 - every failure is the answer
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}


def connect(address):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3) as s:
        return s.getpeername()


def fetch(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read(64)


def write(path):
    with open(path, "w") as f:
        f.write("0\n")
    return path


ROGUE = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
for _ in range(120):
    spark.sparkContext.parallelize(range(1), 1).map(lambda x: time.sleep(1) or x).collect()
"""


def rogue_run(master, conf):
    """A second application from the sandbox, under a name no job has, with the cluster's
    secret its own driver holds: unbilled if it ran."""
    path = "/tmp/rogue.py"
    with open(path, "w") as f:
        f.write(ROGUE)
    props = "/tmp/rogue.conf"
    with open(props, "w") as f:
        for key, value in conf:
            if key.startswith(("spark.authenticate", "spark.network.crypto")):
                f.write(f"{key} {value}\n")
    submit = os.path.join(os.environ["SPARK_HOME"], "bin", "spark-submit")
    subprocess.run([submit, "--master", master, "--properties-file", props, "--name", "rogue",
                    "--conf",
                    "spark.driver.extraJavaOptions=-Duser.name=nobody-at-all", "--conf",
                    "spark.cores.max=1", "--conf", "spark.ui.enabled=false", path],
                   timeout=300)


def main():
    targets = json.loads(sys.argv[1])
    out = os.environ["DMARKET_OUTPUT_DIR"]
    report = {"uid": os.getuid(), "env": sorted(os.environ),
              "proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
    report["read"] = {p: attempt(lambda p=p: open(p, "rb").read(64)) for p in targets["read"]}
    report["list"] = {p: attempt(lambda p=p: os.listdir(p)) for p in targets["list"]}
    job_dir = os.path.dirname(out)
    report["jobs"] = sorted(os.listdir(os.path.dirname(job_dir)))
    report["own_exit_code"] = attempt(lambda: write(os.path.join(job_dir, "exit_code")))
    report["write"] = {p: attempt(lambda p=p: write(p)) for p in targets["write"]}
    report["signal"] = {str(pid): attempt(lambda pid=pid: os.kill(pid, 0))
                        for pid in targets["signal"]}
    report["environ"] = {str(pid): attempt(lambda pid=pid: open(f"/proc/{pid}/environ").read())
                         for pid in targets["signal"]}
    report["connect"] = {a: attempt(lambda a=a: connect(a)) for a in targets["connect"]}
    report["http"] = {u: attempt(lambda u=u: fetch(u)) for u in targets.get("http", [])}
    # A process of its own session, meant to outlive the job.
    survivor = subprocess.Popen(["sleep", targets["survivor"]], start_new_session=True)
    report["survivor"] = survivor.pid
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f)
    if targets.get("foreign_app"):
        foreign = targets["foreign_app"]
        print(f"Connected to Spark cluster with app ID {foreign}", flush=True)
        events = targets["events_dir"]
        for name in (foreign, foreign + ".inprogress"):
            attempt(lambda name=name: write(os.path.join(events, name)))
    if targets.get("spark"):
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("innocent").getOrCreate()
        print(f"started {spark.sparkContext.applicationId}", flush=True)
        spark.sparkContext.parallelize(range(2), 2).map(lambda x: time.sleep(1) or x).collect()
        if targets.get("rogue"):
            rogue_run(spark.sparkContext.master, spark.sparkContext.getConf().getAll())
        time.sleep(float(targets.get("seconds", 0)))
        spark.stop()
    if targets.get("second"):
        # A second application of its own, after the first: it would run unbilled.
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("second").getOrCreate()
        print(f"second {spark.sparkContext.applicationId}", flush=True)
        for _ in range(60):
            spark.sparkContext.parallelize(range(2), 2).map(lambda x: time.sleep(1) or x).collect()


if __name__ == "__main__":
    main()
