import json
import time
from datetime import timedelta
from decimal import Decimal

from django.db.models import Sum

from dmarket.cluster import spark
from dmarket.cluster.billing import billing_tick, executor_spans
from dmarket.cluster.launcher import launcher_tick
from dmarket.cluster.testing import state_summary
from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry, UsageRecord
from dmarket.credits.services import usage_cost
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .conftest import APPS


def share_workers(cluster, make_user):
    """Two contributors, each sharing one of the cluster's workers as a machine."""
    machines = {}
    for name, address in (("carol", "127.0.0.2"), ("dave", "127.0.0.3")):
        owner = make_user(name)
        worker = cluster.worker(address)
        machines[address] = Machine.objects.create(
            user=owner, cores=1, memory_mb=1024, address=address, state=Machine.ONLINE,
            worker_id=worker["id"])
    return machines


def submit(user, **fields):
    body = {"name": "test", "entry_file": str(APPS / "work.py"), "cores": 2,
            "executor_memory_mb": 512, "max_credits": "5"}
    body.update(fields)
    if str(body["entry_file"]).startswith("/") and not user.is_staff:
        # These tests name their applications by path on the server, which only operators
        # may (users' jobs name stored files: test_files.py, test_sandbox.py).
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    response = client_for(user).post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.json()
    return Job.objects.get(pk=response.json()["id"])


def drive(job, until, timeout=120, billing=True):
    """Run launcher and billing iterations, as the daemons would, until until(job) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher_tick()
        if billing:
            billing_tick()
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} is {job.status} (settled {job.settled_at}) after "
                         f"{timeout} s; log:\n{read_log(job)}\nthe master:\n{master_summary()}")


def master_summary():
    try:
        return state_summary(spark.master_state())
    except spark.SparkUnavailable as e:
        return str(e)


def settled(job):
    return job.settled_at is not None


def read_log(job):
    try:
        return job.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"


def result(job):
    return json.loads((job.output_dir / "result.json").read_text())


def history_core_ms(job):
    """Core-milliseconds per executor as the history server reports them, the bill's basis."""
    app = spark.history_app(job.spark_app_id)
    executors = spark.history_executors(job.spark_app_id)
    # Whole milliseconds, in exact integer arithmetic (a float's 64938.999… must stay 64939).
    return {executor["id"]: int(executor["totalCores"]) * ((end - start) // timedelta(
        milliseconds=1)) for executor, start, end in executor_spans(job, app, executors)}


def expected_bill(job, usage_by_executor):
    """What the job owes for the executors named, by what the history server says they held
    (executor id -> core-ms, or (core-ms, GPU-ms)): each was metered as one usage record of
    exactly that, and each posting (a machine's records posted together) is priced once."""
    usage = {executor: value if isinstance(value, tuple) else (value, 0)
             for executor, value in usage_by_executor.items()}
    records = {record.key.rsplit(":", 1)[1]: record for record in UsageRecord.objects.filter(
        run=job.run, key__startswith=f"{job.spark_app_id}:")}
    assert {e: (records[e].core_ms, records[e].gpu_ms) for e in usage} == usage
    postings = {}
    for executor, (core, gpu) in usage.items():
        posted = postings.setdefault(records[executor].posted_key, [0, 0])
        posted[0] += core
        posted[1] += gpu
    total = sum((usage_cost(core, job.run.price_per_core_hour, job.run.premium_rate, gpu,
                            job.run.price_per_gpu_hour) for core, gpu in postings.values()),
                Decimal(0))
    return min(total, job.run.max_credits)


def ledger_sum(**filters):
    return LedgerEntry.objects.filter(**filters).aggregate(s=Sum("amount"))["s"] or Decimal(0)


def executors_registered(job, count):
    """Whether the history server shows `count` executors of the job's application yet."""
    if not job.spark_app_id:
        return False
    try:
        executors = spark.history_executors(job.spark_app_id) or []
    except spark.SparkUnavailable:
        return False
    return len([e for e in executors if e["id"] != "driver"]) >= count


def pgid_alive(pgid):
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
