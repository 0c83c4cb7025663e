"""The closed cluster, tried as an outsider would: an application or a worker without the
cluster's secret (or with a wrong one) joins nothing and runs nothing."""

import subprocess
import sys
import time

import pytest

from dmarket.cluster import spark
from dmarket.cluster.testing import wait_for

pytestmark = pytest.mark.spark

OUTSIDER = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName(sys.argv[2]).getOrCreate()
spark.sparkContext.parallelize(range(2), 2).map(lambda x: open(sys.argv[1] + str(x), "w")).count()
"""


def outsider(cluster, tmp_path, name, properties):
    """spark-submit as anyone who can reach the master could run it, not through the market."""
    app = tmp_path / "outsider.py"
    app.write_text(OUTSIDER)
    argv = [str(spark.spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url,
            "--conf", "spark.ui.enabled=false"]
    if properties:
        conf = tmp_path / f"{name}.conf"
        conf.write_text("".join(f"{k} {v}\n" for k, v in properties.items()))
        argv += ["--properties-file", str(conf)]
    return subprocess.Popen([*argv, str(app), str(tmp_path / f"{name}-ran-"), name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={"PATH": "/usr/bin:/bin", "PYSPARK_PYTHON": sys.executable})


def test_an_application_without_the_secret_or_with_a_wrong_one_runs_nothing(
        spark_cluster, tmp_path):
    tries = {
        "no-secret": outsider(spark_cluster, tmp_path, "no-secret", {}),
        "no-auth": outsider(spark_cluster, tmp_path, "no-auth",
                            {"spark.authenticate": "false"}),
        "wrong-secret": outsider(spark_cluster, tmp_path, "wrong-secret", {
            "spark.authenticate": "true", "spark.network.crypto.enabled": "true",
            "spark.authenticate.secret": "not-the-clusters"}),
    }
    # Spark's driver tries to register three times, 20 s each, then gives up.
    outputs = {name: p.communicate(timeout=240)[0].decode(errors="replace")
               for name, p in tries.items()}

    for name, p in tries.items():
        assert p.returncode != 0, outputs[name][-2000:]
    assert list(tmp_path.glob("*-ran-*")) == []
    state = spark_cluster._get(spark_cluster.master_ui + "/json/")
    names = {a["name"] for a in state["activeapps"] + state["completedapps"]}
    assert not names & set(tries), names


def test_a_worker_without_the_secret_never_becomes_alive(spark_cluster):
    spark_cluster.start_worker("127.0.0.9", 1, 512, secret=False, wait=False)
    try:
        log = spark_cluster.logs / "worker-127.0.0.9.log"
        # It tried, and was refused.
        wait_for(lambda: log.exists() and "Failed to connect to master" in log.read_text(), 90,
                 what="the worker to try the master")
        time.sleep(5)
        workers = spark_cluster._get(spark_cluster.master_ui + "/json/")["workers"]
        assert [w for w in workers if w["host"] == "127.0.0.9"] == []
    finally:
        spark_cluster.kill_worker("127.0.0.9")
