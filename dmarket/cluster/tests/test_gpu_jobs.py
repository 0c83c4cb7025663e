"""GPU jobs without Spark: what spark-submit is told, when the launcher claims them, and what
the history server's executor resources bill (no Spark runs here; the real cluster's test is
test_gpu_cluster.py)."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from dmarket.cluster import spark
from dmarket.cluster.billing import job_usage, policed_usage
from dmarket.cluster.launcher import claimable, launcher_claim, waiting_reasons
from dmarket.cluster.models import PolicedApp
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted
from dmarket.machines.models import Machine

from .test_submit_argv import confs

pytestmark = pytest.mark.django_db


def gpu_machine(owner, gpus, state=Machine.ONLINE, address="192.0.2.30", **fields):
    return Machine.objects.create(user=owner, cores=4, memory_mb=8192, address=address,
                                  machine_type="gpu", gpus=gpus, state=state, **fields)


# --- spark-submit ------------------------------------------------------------------------------

def test_a_gpu_job_asks_spark_for_its_executors_and_tasks_gpus(alice, bob, entry_file):
    gpu_machine(bob, 2)
    job = submitted(alice, entry_file, gpus_per_executor=2, gpus_per_task=0.5)

    pairs = dict(confs(spark.submit_argv(job)))

    assert pairs["spark.executor.resource.gpu.amount"] == "2"
    assert pairs["spark.task.resource.gpu.amount"] == "0.5"


@pytest.mark.parametrize("per_task, amount", [(1, "1"), (2, "2"), (0.5, "0.5"),
                                              (1 / 6, "0.16666666666666666"),
                                              (1 / 64, "0.015625")])
def test_a_tasks_share_reaches_spark_in_full(alice, bob, entry_file, per_task, amount):
    # Spark makes floor(1 / amount) tasks a GPU: 1/6 rounded to "0.166667" would make 5.
    gpu_machine(bob, 2)
    job = submitted(alice, entry_file, gpus_per_executor=2, gpus_per_task=per_task)

    assert dict(confs(spark.submit_argv(job)))["spark.task.resource.gpu.amount"] == amount
    assert int(1 / float(amount)) == round(1 / per_task)


def test_a_cpu_job_asks_spark_for_no_gpu(alice, entry_file):
    job = submitted(alice, entry_file)

    keys = [k for k, _ in confs(spark.submit_argv(job))]

    assert not [k for k in keys if ".resource." in k]


def test_a_job_cannot_ask_spark_for_gpus_through_its_own_properties(alice, entry_file):
    from dmarket.conftest import client_for

    response = client_for(alice).post("/api/jobs/", {
        "name": "job", "entry_file": entry_file,
        "conf": {"spark.executor.resource.gpu.amount": "1"}}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["conf"]


# --- placement ---------------------------------------------------------------------------------

def test_a_gpu_job_waits_until_a_machine_with_enough_gpus_is_online(alice, bob, entry_file):
    small = gpu_machine(bob, 1)
    big = gpu_machine(bob, 2, state=Machine.OFFLINE, address="192.0.2.31")
    job = submitted(alice, entry_file, gpus_per_executor=2)
    plain = submitted(bob, entry_file)

    assert list(claimable(Job.objects.filter(status=Job.QUEUED))) == [plain]
    waiting_reasons()
    job.refresh_from_db()
    assert job.status_reason == ("waiting: no online machine offers 2 of resource 'gpu' (each "
                                 "executor's); the most one offers now is 1")
    assert launcher_claim("l1") == plain
    assert launcher_claim("l1") is None

    Machine.objects.filter(pk=big.pk).update(state=Machine.ONLINE)
    claimed = launcher_claim("l1")
    assert (claimed.pk, claimed.status, claimed.status_reason) == (job.pk, Job.STARTING, "")
    assert small.gpus == 1


def test_a_machine_of_another_accelerator_does_not_place_a_gpu_job(alice, bob, settings,
                                                                   entry_file):
    settings.DMARKET_PRICES = {"core": Decimal("1"), "gpu": Decimal("4"),
                               "fpga": Decimal("9")}
    gpu_machine(bob, 4, state=Machine.OFFLINE)
    Machine.objects.create(user=bob, cores=4, memory_mb=8192, address="192.0.2.40",
                           machine_type="fpga", gpus=4, state=Machine.ONLINE)
    job = submitted(alice, entry_file, gpus_per_executor=1)

    assert launcher_claim("l1") is None
    waiting_reasons()
    job.refresh_from_db()
    assert job.status_reason.startswith("waiting: no online machine offers 1 of resource 'gpu'")
    fpga = submitted(alice, entry_file, machine_type="fpga", gpus_per_executor=2)
    assert launcher_claim("l1") == fpga
    assert dict(confs(spark.submit_argv(fpga)))["spark.executor.resource.fpga.amount"] == "2"


# --- billing from the history server's resources ------------------------------------------------

APP = {"id": "app-7", "attempts": [{"completed": True,
                                    "endTime": "2026-11-22T09:00:00.000GMT"}]}


def executor(executor_id, host, cores, resources, add, remove):
    return {"id": executor_id, "hostPort": f"{host}:41000", "totalCores": cores,
            "addTime": add, "removeTime": remove, "resources": resources,
            "executorLogs": {}}


def test_each_executor_is_billed_its_cores_and_the_gpus_it_held(alice, bob, entry_file):
    gpu = gpu_machine(bob, 2, address="127.0.0.4")
    cpu = Machine.objects.create(user=bob, cores=4, memory_mb=8192, address="127.0.0.5",
                                 state=Machine.ONLINE)
    job = submitted(alice, entry_file, gpus_per_executor=2, cores=4)
    Job.objects.filter(pk=job.pk).update(
        spark_app_id="app-7", status=Job.SUCCEEDED,
        finished_at=datetime(2026, 11, 22, 9, tzinfo=timezone.utc))
    job.refresh_from_db()
    two_gpus = {"gpu": {"name": "gpu", "addresses": ["0", "1"]}}
    executors = [
        {"id": "driver", "hostPort": "127.0.0.1:4000", "totalCores": 0,
         "addTime": "2026-11-22T08:00:00.000GMT", "executorLogs": {}},
        # 30 minutes with 2 cores and 2 GPUs: 3,600,000 core-ms and as many GPU-ms.
        executor("0", "127.0.0.4", 2, two_gpus, "2026-11-22T08:00:00.000GMT",
                 "2026-11-22T08:30:00.000GMT"),
        # A resource of another name, or none, is no GPU of this job's.
        executor("1", "127.0.0.5", 2, {"fpga": {"name": "fpga", "addresses": ["0"]}},
                 "2026-11-22T08:00:00.000GMT", "2026-11-22T08:15:00.000GMT"),
        executor("2", "127.0.0.5", 1, None, "2026-11-22T08:00:00.000GMT",
                 "2026-11-22T08:06:00.000GMT"),
    ]

    usages, running = job_usage(job, APP, executors, [])

    assert running == 0
    assert [(u.key, u.machine, u.core_ms, u.gpu_ms) for u in usages] == [
        ("app-7:0", gpu, 3_600_000, 3_600_000),
        ("app-7:1", cpu, 1_800_000, 0),
        ("app-7:2", cpu, 360_000, 0),
    ]


def test_a_cpu_jobs_executor_that_held_gpus_anyway_pays_for_them(alice, bob, entry_file):
    # Its driver may ask Spark for GPUs itself (SparkConf in its own code): what the history
    # shows it held is billed at the GPU price fixed at its submission.
    gpu_machine(bob, 1, address="127.0.0.4")
    job = submitted(alice, entry_file)
    Job.objects.filter(pk=job.pk).update(spark_app_id="app-7", status=Job.SUCCEEDED)
    job.refresh_from_db()
    held = executor("0", "127.0.0.4", 1, {"gpu": {"name": "gpu", "addresses": ["0"]}},
                    "2026-11-22T08:00:00.000GMT", "2026-11-22T08:01:00.000GMT")

    usages, _ = job_usage(job, APP, [held], [])

    assert [(u.core_ms, u.gpu_ms) for u in usages] == [(60_000, 60_000)]
    assert job.run.price_per_gpu_hour == Decimal("4")


def test_a_running_gpu_executor_counts_toward_the_cap(alice, bob, entry_file):
    gpu_machine(bob, 1, address="127.0.0.4")
    job = submitted(alice, entry_file, gpus_per_executor=1)
    Job.objects.filter(pk=job.pk).update(spark_app_id="app-7", status=Job.RUNNING)
    job.refresh_from_db()
    app = {"id": "app-7", "attempts": [{"completed": False}]}
    running = executor("0", "127.0.0.4", 1, {"gpu": {"name": "gpu", "addresses": ["0"]}},
                       "2020-01-01T00:00:00.000GMT", None)

    usages, cost = job_usage(job, app, [running], [])

    # Years of one core and one GPU at 1 + 4 an hour, premium 2: far past any cap.
    assert usages == [] and cost > Decimal("100000")


def test_a_policed_application_is_billed_the_gpus_its_executors_held(alice, bob, entry_file):
    machine = gpu_machine(bob, 2, address="127.0.0.4", worker_id="worker-g")
    job = submitted(alice, entry_file)
    record = PolicedApp.objects.create(
        app_id="app-9", job=job, reason="test",
        started_at=datetime(2026, 11, 22, 8, tzinfo=timezone.utc),
        executors=[{"worker": "worker-g", "host": "127.0.0.4", "executor": "0", "cores": 1,
                    "gpus": 2},
                   # A worker's JSON is its contributor's: no more GPUs than the machine offers.
                   {"worker": "worker-g", "host": "127.0.0.4", "executor": "1", "cores": 1,
                    "gpus": 4096}])
    PolicedApp.objects.filter(pk=record.pk).update(
        killed_at=datetime(2026, 11, 22, 8, 0, 10, tzinfo=timezone.utc))

    usages = policed_usage(job)

    assert [(u.key, u.machine, u.core_ms, u.gpu_ms) for u in usages] == [
        ("policed:app-9:0", machine, 10_000, 20_000),
        ("policed:app-9:1", machine, 10_000, 20_000)]


def test_a_gpu_job_with_an_environment_waits_for_one_machine_that_fits_both(alice, bob,
                                                                           entry_file):
    from dmarket.envs.models import Environment

    env = Environment.objects.create(key="g" * 64, requirements="dmkprobe==1.0\n",
                                     python="3.99", platform="linux-riscv", status="READY",
                                     size=1, sha256="0" * 64)
    # One machine runs the environment's Python, another offers the GPUs: neither fits.
    Machine.objects.create(user=bob, cores=4, memory_mb=8192, address="192.0.2.50",
                           state=Machine.ONLINE, python="3.99", platform="linux-riscv")
    gpus = gpu_machine(bob, 1, python="3.11", platform="linux-x86_64")
    job = submitted(alice, entry_file, gpus_per_executor=1)
    Job.objects.filter(pk=job.pk).update(environment=env, env_python="3.99",
                                         env_platform="linux-riscv")

    assert launcher_claim("l1") is None
    waiting_reasons()
    job.refresh_from_db()
    assert job.status_reason == ("waiting: no online machine both runs Python 3.99 on "
                                 "linux-riscv and offers 1 of resource 'gpu'")

    Machine.objects.filter(pk=gpus.pk).update(python="3.99", platform="linux-riscv")
    assert launcher_claim("l1").pk == job.pk
