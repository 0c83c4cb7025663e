"""What the closed cluster costs a shuffle-heavy job, measured in one run, as ratios.

    .venv/bin/python bench/cluster_security.py [--runs 3] [--rows 3000000]

Starts three local Spark clusters (a master and one 2-core worker each, on their own
127.0.0.x addresses), all with Spark authentication, and runs the same job on each in turn,
round after round:

- plain:     no RPC encryption, no local-disk I/O encryption, the worker unsandboxed;
- encrypted: RPC encryption (spark.network.crypto.enabled) and I/O encryption
             (spark.io.encryption.enabled), the worker unsandboxed;
- market:    encrypted, the worker in the contributor's sandbox (as the agent runs it, every
             executor in its own nested sandbox) — the default.

The job: rows of (id, sha256 hex) shuffled into 16 partitions by the hash, then summed: every
row crosses the shuffle (written to local disk, fetched over the network between executors).
Prints, per configuration, the median of the job's own time (from the first action's start to
its result, in the driver) and of spark-submit's wall time, and the ratios encrypted / plain,
market / encrypted and market / plain. Nothing else should run meanwhile.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JOB = """
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("shuffle").getOrCreate()
rows = int(sys.argv[1])
df = spark.range(0, rows, numPartitions=8).selectExpr("id", "sha2(cast(id as string), 256) h")
start = time.perf_counter()
total = df.repartition(16, "h").selectExpr("sum(length(h)) s").collect()[0]["s"]
print(f"JOB_SECONDS {time.perf_counter() - start:.3f} {total}", flush=True)
spark.stop()
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3_000_000)
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")
    import django

    django.setup()
    from dmarket.cluster.spark import spark_home
    from dmarket.cluster.testing import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="dmarket-bench-security-"))
    app = root / "shuffle.py"
    app.write_text(JOB)
    configs = {"plain": (False, False, False), "encrypted": (True, True, False),
               "market": (True, True, True)}
    clusters, times = {}, {name: {"job": [], "wall": []} for name in configs}
    try:
        for i, (name, (rpc, io, sandboxed)) in enumerate(configs.items()):
            cluster = LocalCluster(root / name, rpc_encryption=rpc).start()
            address = f"127.0.0.{21 + i}"
            if sandboxed:
                cluster.start_sandboxed_worker(address, 2, 2048)
            else:
                cluster.start_worker(address, 2, 2048)
            props = root / f"{name}.conf"
            lines = ["spark.authenticate true", f"spark.authenticate.secret {cluster.secret}"]
            if rpc:
                lines.append("spark.network.crypto.enabled true")
            if io:
                lines.append("spark.io.encryption.enabled true")
            props.write_text("\n".join(lines) + "\n")
            clusters[name] = (cluster, props)
            print(f"{name}: cluster up ({address})", flush=True)
        for run in range(options.runs):
            for name, (cluster, props) in clusters.items():
                start = time.perf_counter()
                done = subprocess.run(
                    [str(spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url,
                     "--properties-file", str(props), "--conf", "spark.ui.enabled=false",
                     "--executor-memory", "900m", "--conf", "spark.sql.shuffle.partitions=16",
                     str(app), str(options.rows)],
                    capture_output=True, text=True, timeout=900,
                    env=dict(os.environ, PYSPARK_PYTHON=sys.executable))
                wall = time.perf_counter() - start
                line = [l for l in done.stdout.splitlines() if l.startswith("JOB_SECONDS")]
                if done.returncode or not line:
                    raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
                job = float(line[0].split()[1])
                times[name]["job"].append(job)
                times[name]["wall"].append(wall)
                print(f"run {run + 1} {name:9s} job {job:6.2f} s  spark-submit {wall:6.2f} s",
                      flush=True)
    finally:
        for cluster, _ in clusters.values():
            cluster.cleanup()
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    print(f"\n{options.rows:,} rows, {options.runs} runs, medians:")
    print(f"{'':10s} {'job s':>8s} {'wall s':>8s}")
    for name, m in med.items():
        print(f"{name:10s} {m['job']:8.2f} {m['wall']:8.2f}")
    for a, b in (("encrypted", "plain"), ("market", "encrypted"), ("market", "plain")):
        print(f"{a} / {b}: job x{med[a]['job'] / med[b]['job']:.2f}, "
              f"spark-submit x{med[a]['wall'] / med[b]['wall']:.2f}")


if __name__ == "__main__":
    main()
