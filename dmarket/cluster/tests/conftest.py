"""A real Spark standalone cluster for the cluster tests: a master, a history server and two
workers of one core each on 127.0.0.2 and 127.0.0.3, started once per test session."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from dmarket.cluster import launcher, spark
from dmarket.cluster.testing import LocalCluster
# The dashboard's headless browser, for test_browser_job.py.
from dmarket.web.tests.conftest import browser, chromium  # noqa: F401

APPS = Path(__file__).parent / "apps"
WORKERS = [("127.0.0.2", 1, 1024), ("127.0.0.3", 1, 1024)]


# Every test that uses spark_cluster (through cluster, inference_server...) is marked `spark` by
# dmarket/conftest.py, which pytest loads also when only another app's tests are collected.


@pytest.fixture(scope="session")
def spark_cluster():
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: Spark cannot run")
    cluster = LocalCluster(tempfile.mkdtemp(prefix="dmarket-spark-"))
    try:
        yield cluster.start(workers=WORKERS)
    finally:
        # Also when a daemon failed to start: leave no JVM behind.
        cluster.cleanup()


@pytest.fixture
def cluster(spark_cluster, settings, tmp_path):
    """The session's cluster, with this test's settings pointing at it and every worker up."""
    for address, cores, memory_mb in WORKERS:
        if spark_cluster.worker(address) is None:
            spark_cluster.start_worker(address, cores, memory_mb)
    use_cluster(settings, spark_cluster, f"test-launcher-{tmp_path.name}")
    # What a test that failed left running would hold the next tests' cores (and make them
    # fail too): each test starts on an idle cluster.
    spark_cluster.idle(spark.master_kill_app)
    yield spark_cluster
    drivers_kill()


def drivers_kill():
    """Kill the drivers a test left running (the launcher's, of jobs it never saw end)."""
    for pid, child in list(launcher._children.items()):
        if child.poll() is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait(timeout=10)


def use_cluster(settings, cluster, launcher_id):
    """Point this test's settings at `cluster`, with short grace periods."""
    settings.DMARKET_SPARK_MASTER_URL = cluster.master_url
    settings.DMARKET_SPARK_MASTER_UI = cluster.master_ui
    settings.DMARKET_HISTORY_URL = cluster.history_url
    settings.DMARKET_EVENT_LOG_DIR = cluster.events
    settings.DMARKET_SPARK_SECRET = cluster.secret
    settings.DMARKET_SPARK_RPC_ENCRYPTION = cluster.rpc_encryption
    settings.DMARKET_SETTLE_GRACE = 5
    settings.DMARKET_CANCEL_GRACE = 5
    settings.DMARKET_LAUNCHER_ID = launcher_id
    return cluster
