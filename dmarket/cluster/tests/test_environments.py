"""Jobs with their own Python environment and working directory on a real Spark cluster: a
job that imports a package the workers' default Python lacks fails without requirements and
succeeds with them (driver and executors), the second submit of the same requirements builds
nothing, and a --working-dir job reads its own files by relative paths everywhere."""

import io
import zipfile

import pytest

from dmarket.conftest import client_for
from dmarket.envs.models import Environment
from dmarket.envs.testing import local_index, machines_run_builder_python, make_wheel
from dmarket.files.tests.util import uploaded
from dmarket.jobs.models import Job

from .conftest import APPS
from .util import drive, read_log, result, settled, share_workers, submit

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = "hello from dmkprobe"


@pytest.fixture
def market(cluster, make_user, live_server, settings, tmp_path):
    settings.DMARKET_PUBLIC_URL = live_server.url
    machines_run_builder_python(share_workers(cluster, make_user).values())
    make_wheel(tmp_path / "wheels", "dmkprobe", "1.0",
               {"dmkprobe/__init__.py": f"def hello():\n    return {PROBE!r}\n"})
    local_index(settings, tmp_path / "wheels")
    alice = make_user("alice")
    uploaded(alice, "apps/env_app.py", (APPS / "env_app.py").read_bytes())
    return alice


def env_job(user, **fields):
    return submit(user, entry_file="dmarket://apps/env_app.py", max_credits="5", **fields)


def probes(job):
    found = result(job)
    return [row["probe"] for row in found["rows"]] + [found["driver"]["probe"]]


def test_a_package_no_worker_has_needs_requirements_which_are_built_once(market):
    alice = market
    without = drive(env_job(alice), settled)
    assert without.status == Job.FAILED, read_log(without)
    assert all(p.startswith("ImportError: No module named 'dmkprobe'") for p in probes(without))

    first = drive(env_job(alice, requirements="dmkprobe==1.0\n"), settled, timeout=240)
    assert first.status == Job.SUCCEEDED, read_log(first)
    assert probes(first) == [PROBE, PROBE, PROBE]
    env = Environment.objects.get()
    built_at, started = env.built_at, env.build_started_at

    # The same set again: the stored environment, ready at submit; nothing is built.
    second = env_job(alice, requirements="DMKProbe==1.0\n")
    assert (second.environment_id, second.status_reason) == (env.pk, "")
    second = drive(second, settled)
    assert second.status == Job.SUCCEEDED, read_log(second)
    assert probes(second) == [PROBE, PROBE, PROBE]
    env.refresh_from_db()
    assert (Environment.objects.count(), env.uses, env.built_at, env.build_started_at) == (
        1, 2, built_at, started)


def test_a_working_dir_and_a_stored_env_and_a_spark_property(market):
    alice = market
    response = client_for(alice).post("/api/envs/", {"requirements": "dmkprobe==1.0"},
                                      format="json")
    assert response.status_code == 202
    key = response.json()["key"]
    # The launcher builds it while it has no job to start.
    from dmarket.cluster.launcher import launcher_tick
    import time

    deadline = time.monotonic() + 120
    while Environment.objects.get(key=key).status == "BUILDING" and time.monotonic() < deadline:
        launcher_tick()
        time.sleep(0.2)
    assert Environment.objects.get(key=key).status == "READY"
    saved = client_for(alice).post(f"/api/envs/{key}/save/", {"name": "envs/probe.tar.gz"},
                                   format="json")
    assert saved.status_code == 201
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("wdmod.py", "def name():\n    return 'wdmod from the working dir'\n")
        z.writestr("data/values.txt", "4 5 6\n")
    uploaded(alice, "wd.zip", buffer.getvalue())

    job = drive(env_job(alice, env="dmarket://envs/probe.tar.gz", working_dir="dmarket://wd.zip",
                        conf={"spark.sql.shuffle.partitions": "7"}), settled)

    assert job.status == Job.SUCCEEDED, read_log(job)
    found = result(job)
    assert probes(job) == [PROBE, PROBE, PROBE]
    for row in found["rows"] + [found["driver"]]:
        assert (row["values"], row["wdmod"]) == (["4", "5", "6"], "wdmod from the working dir")
        assert {"wdmod.py", "data"} <= set(row["cwd_files"])
    assert found["partitions"] == "7"
