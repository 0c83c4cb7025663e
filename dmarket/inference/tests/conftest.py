"""Inference tests on the cluster tests' local Spark cluster (two workers of one core), with
the inference server's driver pointed at this test's database."""

import pytest
from django.db import connection

from dmarket.cluster.tests.conftest import cluster, spark_cluster  # noqa: F401
from dmarket.inference import keeper


@pytest.fixture
def inference_server(cluster, settings, tmp_path, monkeypatch):  # noqa: F811
    """The cluster, and settings for an inference server that stops soon when idle; the
    driver it starts is stopped after the test."""
    db = connection.settings_dict
    monkeypatch.setenv("DATABASE_URL", f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@"
                       f"{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}")
    settings.DMARKET_INFERENCE_DIR = tmp_path / "inference"
    settings.DMARKET_INFERENCE_IDLE = 3
    settings.DMARKET_INFERENCE_EXECUTOR_MEMORY_MB = 512
    yield cluster
    keeper.server_stop()
