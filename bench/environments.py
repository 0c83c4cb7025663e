"""What a job's own environment costs, against the same job on the workers' default Python,
measured in one run, as ratios.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dmk_bench \\
        BENCH_ROUNDS=3 BENCH_PAYLOAD_MB=20 .venv/bin/pytest bench/environments.py -s

Runs the market in-process as the cluster tests do (a real Spark master, history server and
two 1-core workers on 127.0.0.2-3, the launcher's and billing's loops, the API on a live
server), with a local index of wheels made here (no network): the package `dmkprobe` with
PAYLOAD MB of incompressible data, the stand-in for a real package's size. Round after round
the same 2-executor job runs three ways:

- default: no environment (the job imports dmkprobe only where it exists);
- first:   requirements never asked for before (a new version each round): the launcher
           builds the environment (pip in its sandbox, packing), then the job runs with it;
- reuse:   the same requirements again: the stored environment, nothing built.

Prints, per way, the median of the job's time from submit to its driver's end, and the
ratios first / default and reuse / default. Nothing else should run meanwhile.
"""

import os
import statistics

import pytest

from dmarket.cluster.tests.conftest import (APPS, WORKERS, cluster, spark_cluster,  # noqa: F401
                                            use_cluster)
from dmarket.conftest import files_dir, jobs_dir, make_user  # noqa: F401
from dmarket.cluster.tests.util import drive, read_log, settled, share_workers, submit
from dmarket.envs.models import Environment
from dmarket.envs.testing import local_index, machines_run_builder_python, make_wheel
from dmarket.files.tests.util import uploaded
from dmarket.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAYLOAD_MB = int(os.environ.get("BENCH_PAYLOAD_MB", "20"))


def wheels(directory, versions):
    payload = os.urandom(PAYLOAD_MB * 1024 * 1024).hex()[:PAYLOAD_MB * 1024 * 1024]
    for version in versions:
        make_wheel(directory, "dmkprobe", version, {
            "dmkprobe/__init__.py": "def hello():\n    return 'hello from dmkprobe'\n",
            "dmkprobe/payload.txt": payload})


def seconds(job):
    return (job.finished_at - job.created_at).total_seconds()


def test_bench_environments(cluster, make_user, live_server, settings, tmp_path):  # noqa: F811
    settings.DMARKET_PUBLIC_URL = live_server.url
    machines_run_builder_python(share_workers(cluster, make_user).values())
    versions = [f"1.{i}" for i in range(ROUNDS)]
    wheels(tmp_path / "wheels", versions)
    local_index(settings, tmp_path / "wheels")
    alice = make_user("alice")
    uploaded(alice, "apps/bench_env_app.py", (APPS / "bench_env_app.py").read_bytes())

    times = {"default": [], "first": [], "reuse": [], "build": []}
    for version in versions:
        for way in ("default", "first", "reuse"):
            fields = {} if way == "default" else {"requirements": f"dmkprobe=={version}\n"}
            job = drive(submit(alice, entry_file="dmarket://apps/bench_env_app.py",
                               max_credits="2", **fields), settled, timeout=300)
            assert job.status == Job.SUCCEEDED, read_log(job)
            times[way].append(seconds(job))
            if way == "first":
                env = Environment.objects.get(requirements=f"dmkprobe=={version}\n")
                times["build"].append((env.built_at - env.created_at).total_seconds())
            print(f"{way:8} dmkprobe=={version}: {seconds(job):.1f} s", flush=True)
    median = {way: statistics.median(values) for way, values in times.items()}
    size = Environment.objects.order_by("id").first().size
    print(f"\nenvironment: {size / 1e6:.1f} MB packed ({PAYLOAD_MB} MB payload), "
          f"{ROUNDS} rounds")
    print(f"{'way':10}{'median s':>10}  all")
    for way, values in times.items():
        print(f"{way:10}{median[way]:>10.1f}  {', '.join(f'{v:.1f}' for v in values)}")
    print(f"first / default  x{median['first'] / median['default']:.2f}")
    print(f"reuse / default  x{median['reuse'] / median['default']:.2f}")
