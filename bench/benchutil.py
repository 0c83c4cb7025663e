"""What the bench scripts share: a free port, a fresh database of their own, a market with a
Spark cluster for the inference benches."""

import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(url, name):
    """A fresh database `name` on DATABASE_URL's server: never the one it names, which may be
    someone's real one. Returns its URL."""
    import dj_database_url
    import psycopg

    c = dj_database_url.parse(url)
    with psycopg.connect(host=c["HOST"], port=c["PORT"] or 5432, user=c["USER"],
                         password=c["PASSWORD"], dbname="postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    password = f":{c['PASSWORD']}" if c["PASSWORD"] else ""
    return f"postgres://{c['USER']}{password}@{c['HOST']}:{c['PORT'] or 5432}/{name}"


def inference_market(prefix, database, cores):
    """For an inference bench: a temporary data directory, a fresh database `database`
    (DATABASE_URL's server), Django set up and migrated, a local Spark cluster (master, history
    server, one worker of `cores` cores on 127.0.0.2) that the settings point at, and the
    inference server's settings for it. Returns (settings, cluster); cluster.cleanup() ends it."""
    import os
    import tempfile
    from pathlib import Path

    data = Path(tempfile.mkdtemp(prefix=prefix))
    url = fresh_database(os.environ.get("DATABASE_URL",
                                        "postgres://postgres@127.0.0.1:5432/postgres"), database)
    os.environ.update(DATABASE_URL=url, DMARKET_DATA_DIR=str(data))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from dmarket.cluster.testing import LocalCluster

    call_command("migrate", verbosity=0)
    cluster = LocalCluster(data / "spark").start(
        workers=[("127.0.0.2", cores, 1024 * cores + 512)])
    settings.DMARKET_SPARK_MASTER_URL = cluster.master_url
    settings.DMARKET_SPARK_SECRET = cluster.secret
    settings.DMARKET_SPARK_MASTER_UI = cluster.master_ui
    settings.DMARKET_HISTORY_URL = cluster.history_url
    settings.DMARKET_EVENT_LOG_DIR = cluster.events
    settings.DMARKET_INFERENCE_IDLE = 60
    settings.DMARKET_INFERENCE_EXECUTOR_MEMORY_MB = 1024
    return settings, cluster
