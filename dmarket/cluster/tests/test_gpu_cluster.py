"""GPUs on the real cluster, without GPU hardware: a contributor offers a machine with two GPUs
(`dmarket machine add --gpus 2 --gpu-addresses 0,1`: fake addresses through the agent's
discovery script, as Spark's own tests do), another a CPU machine. A GPU job lands only where
the GPUs are and each task sees its own; a CPU job beside it, on the same machine too, holds
none; each is billed what the history server says its executors held, and each owner earns
exactly what their machine's executors held."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from dmarket.cluster import spark
from dmarket.cluster.billing import executor_gpus, executor_spans
from dmarket.cluster.testing import wait_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .conftest import APPS
from .test_agent import bare_cluster, dmarket, drive, market, stop_agent  # noqa: F401
from .util import executors_registered, expected_bill, ledger_sum, read_log, result, submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.spark]
GPU_HOST, CPU_HOST = "127.0.0.10", "127.0.0.11"


def add_machine(owner, tmp_path, server, address, *options):
    result = dmarket(owner, tmp_path, server, "machine", "add", "--memory", "1g",
                     "--address", address, "--detach", "--json", *options)
    assert result.exit_code == 0, result.output + result.stderr
    return Machine.objects.get(pk=json.loads(result.stdout)["id"])


def history_bill(job):
    """What the job owes by the history server: each executor's cores and GPUs over its
    lifetime, priced as fixed at submission; and the same per machine address."""
    app = spark.history_app(job.spark_app_id)
    executors = spark.history_executors(job.spark_app_id)
    by_host, gpus = {}, {}
    for executor, start, end in executor_spans(job, app, executors):
        ms = (end - start) // timedelta(milliseconds=1)
        host = executor["hostPort"].rsplit(":", 1)[0]
        by_host.setdefault(host, {})[executor["id"]] = (int(executor["totalCores"]) * ms,
                                                        executor_gpus(job, executor) * ms)
        gpus[executor["id"]] = (host, executor.get("resources") or {})
    by_host = {host: expected_bill(job, usage) for host, usage in by_host.items()}
    return sum(by_host.values(), Decimal(0)), by_host, gpus


def test_a_gpu_job_lands_on_the_gpu_machine_and_a_cpu_job_beside_it_holds_no_gpu(
        market, live_server, make_user, tmp_path):
    carol, dave = make_user("carol"), make_user("dave")
    gpu_machine = add_machine(carol, tmp_path, live_server.url, GPU_HOST, "--cores", "2",
                              "--gpus", "2", "--gpu-addresses", "0,1", "--name", "carol's rig")
    cpu_machine = add_machine(dave, tmp_path, live_server.url, CPU_HOST, "--cores", "1")
    try:
        assert (gpu_machine.machine_type, gpu_machine.gpus) == ("gpu", 2)
        assert (cpu_machine.machine_type, cpu_machine.gpus) == ("cpu", 0)
        for machine in (gpu_machine, cpu_machine):
            wait_for(lambda: Machine.objects.get(pk=machine.pk).state == Machine.ONLINE, 120,
                     what=f"machine {machine.pk} online")
        # The worker offers its GPUs to the master, through the discovery script.
        worker = wait_for(lambda: market.worker(GPU_HOST), 30, what="the GPU worker")
        assert worker["resources"]["gpu"]["addresses"] == ["0", "1"]
        assert not (market.worker(CPU_HOST) or {}).get("resources", {}).get("gpu")

        # One executor of one core and one GPU, its two tasks one GPU each (one at a time).
        gpu_job = submit(make_user("alice"), entry_file=str(APPS / "gpu_app.py"), cores=1,
                         executor_memory_mb=512, gpus_per_executor=1, app_params=["--tasks", "2"])
        gpu_job = drive(gpu_job, lambda j: executors_registered(j, 1))
        # Two executors of one core: one on the CPU machine, one beside the GPU job's.
        cpu_job = submit(make_user("bob"), entry_file=str(APPS / "gpu_app.py"), cores=2,
                         executor_memory_mb=512, app_params=["--tasks", "4"])
        both = (gpu_job, cpu_job)
        drive(cpu_job, lambda j: all(Job.objects.get(pk=x.pk).settled_at for x in both),
              timeout=300)
        for job in both:
            job.refresh_from_db()
            assert job.status == Job.SUCCEEDED, read_log(job)[-3000:]
    finally:
        stop_agent(carol, tmp_path, gpu_machine)
        stop_agent(dave, tmp_path, cpu_machine)

    # The GPU job ran only where the GPUs are; each task saw one of them, which its
    # executor's sandbox says it holds.
    tasks = result(gpu_job)["tasks"]
    assert {t["host"] for t in tasks} == {GPU_HOST}
    for task in tasks:
        assert len(task["gpus"]) == 1 and task["gpus"][0] in ("0", "1"), task
        assert task["executor_gpus"] == task["gpus"][0], task
    # The CPU job's tasks, wherever they ran, held no GPU and were told of none.
    cpu_tasks = result(cpu_job)["tasks"]
    assert {t["host"] for t in cpu_tasks} <= {GPU_HOST, CPU_HOST}
    assert all(t["gpus"] == [] and t["resources"] == [] and t["executor_gpus"] == ""
               for t in cpu_tasks), cpu_tasks

    # Billed exactly what the history server says each executor held: cores and GPUs.
    gpu_bill, gpu_by_host, held = history_bill(gpu_job)
    assert {host for host, _ in held.values()} == {GPU_HOST}
    assert all(len(r["gpu"]["addresses"]) == 1 for _, r in held.values())
    cpu_bill, cpu_by_host, cpu_held = history_bill(cpu_job)
    assert all(not r.get("gpu") for _, r in cpu_held.values())
    assert gpu_job.run.cost == gpu_bill > 0
    assert cpu_job.run.cost == cpu_bill > 0
    # Its charge names the GPU time; the CPU job's none.
    assert all("GPU-ms" in c.memo for c in LedgerEntry.objects.filter(
        run=gpu_job.run, kind=LedgerEntry.CHARGE))
    assert not any("GPU-ms" in c.memo for c in LedgerEntry.objects.filter(
        run=cpu_job.run, kind=LedgerEntry.CHARGE))

    # Each owner earned exactly what their machine's executors held, from both jobs.
    for machine, host in ((gpu_machine, GPU_HOST), (cpu_machine, CPU_HOST)):
        owed = gpu_by_host.get(host, Decimal(0)) + cpu_by_host.get(host, Decimal(0))
        assert ledger_sum(kind=LedgerEntry.EARNING, machine=machine) == owed
    assert ledger_sum(kind=LedgerEntry.EARNING, machine=cpu_machine, run=gpu_job.run) == 0
