"""Metering from what Spark saw: each executor's lifetime, in core-milliseconds and
GPU-milliseconds (the GPU addresses the history server shows it held), on the machine whose
worker ran it.

The history server's /allexecutors gives each executor's cores, add time and (when the driver
saw it go) remove time. Executors that were still up when the application ended have no
remove time: they end with the application (its attempt's end time), or, when the driver died
without ending it, when the launcher saw the driver exit. An executor is metered once it has
ended, under a key naming it, so running this any number of times meters it once; its usage
reaches the ledger per machine once a billing interval and when the job settles.
"""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from dmarket.common.daemon import RowGuard
from dmarket.credits.services import (Usage, billed_accelerator, job_bill_usage, job_release,
                                      usage_cost, usage_pending_cost)
from dmarket.jobs.models import Job
from dmarket.jobs.services import job_mark_stuck
from dmarket.machines.models import Machine

from . import spark

log = logging.getLogger(__name__)


def executor_worker_ui(executor):
    """host:port of the web UI of the worker that ran the executor, from its log URLs."""
    for url in (executor.get("executorLogs") or {}).values():
        parts = urlsplit(url)
        if parts.netloc:
            return parts.netloc
    return ""


def machine_resolver(workers):
    """A function from an executor to the Machine that ran it, or None.

    First by the worker's id (the master's list links the executor's worker UI to it, and the
    machine's agent reports the id), then by the executor's host address.
    """
    worker_ids = {urlsplit(w.get("webuiaddress", "")).netloc: w.get("id") for w in workers}
    cache = {}

    def resolve(executor):
        host = executor.get("hostPort", "").rsplit(":", 1)[0]
        worker_id = worker_ids.get(executor_worker_ui(executor), "")
        key = (worker_id, host)
        if key not in cache:
            machine = None
            if worker_id:
                machine = Machine.objects.filter(worker_id=worker_id).order_by("-id").first()
            if machine is None and host:
                # A machine removed since may have run it; one still shared is likelier.
                at_host = Machine.objects.filter(address=host).order_by("-id")
                machine = (at_host.exclude(state=Machine.REMOVED).first()
                           or at_host.first())
            cache[key] = machine
        return cache[key]

    return resolve


def executor_spans(job, app, executors):
    """(executor, start, end or None) for every executor of the application."""
    attempt = (app or {}).get("attempts", [{}])[-1] if app else {}
    app_end = spark.parse_time(attempt.get("endTime")) if attempt.get("completed") else None
    for executor in executors or []:
        if executor.get("id") == "driver":
            continue
        start = spark.parse_time(executor.get("addTime"))
        if start is None:
            continue
        end = spark.parse_time(executor.get("removeTime")) or app_end
        if end is None and job.is_finished:
            end = job.finished_at
        if end is not None and end < start:
            end = start
        yield executor, start, end


def span_ms(start, end):
    return int((end - start) / timedelta(milliseconds=1))


def core_ms(executor, start, end):
    return int(executor.get("totalCores", 0)) * span_ms(start, end)


def executor_gpus(job, executor):
    """How many GPUs the executor held: the addresses of its job's accelerator resource (gpu
    for a cpu job, whose driver may have asked for some itself) that the history shows."""
    resources = executor.get("resources") or {}
    held = (resources.get(billed_accelerator(job.machine_type))
            if isinstance(resources, dict) else None)
    addresses = held.get("addresses") if isinstance(held, dict) else None
    return len(addresses) if isinstance(addresses, list) else 0


def gpu_ms(job, executor, start, end):
    return executor_gpus(job, executor) * span_ms(start, end)


def job_usage(job, app, executors, workers):
    """Usage records of the job's ended executors, and the cost of those still running."""
    resolve = machine_resolver(workers)
    usages, running_cost = [], 0
    now = timezone.now()
    for executor, start, end in executor_spans(job, app, executors):
        machine = resolve(executor)
        if end is None:
            running_cost += usage_cost(core_ms(executor, start, now), job.price_per_core_hour,
                                       job.premium_rate, gpu_ms(job, executor, start, now),
                                       job.price_per_gpu_hour)
            continue
        if machine is None:
            log.warning("job %s: executor %s on %s ran on no registered machine; not billed",
                        job.pk, executor.get("id"), executor.get("hostPort"))
            continue
        usages.append(Usage(key=f"{job.spark_app_id}:{executor['id']}", machine=machine,
                            core_ms=core_ms(executor, start, end),
                            gpu_ms=gpu_ms(job, executor, start, end)))
    return usages, running_cost


def policed_usage(job):
    """What the applications the police killed for the job (started from its sandbox) held:
    each executor the workers showed, its cores and GPUs from the application's start to its
    kill (the longest it can have run), on the machine whose worker ran it."""
    usages = []
    for record in job.policed_apps.exclude(started_at=None):
        lasted_ms = max(0, span_ms(record.started_at, record.killed_at))
        for executor in record.executors:
            machine = (Machine.objects.filter(worker_id=executor.get("worker") or "-")
                       .order_by("-id").first()
                       or Machine.objects.filter(address=executor.get("host") or "-")
                       .order_by("-id").first())
            if machine is None:
                log.warning("job %s: policed application %s ran on no registered machine",
                            job.pk, record.app_id)
                continue
            usages.append(Usage(key=f"policed:{record.app_id}:{executor.get('executor')}",
                                machine=machine,
                                core_ms=int(executor.get("cores") or 0) * lasted_ms,
                                # A worker's JSON is its contributor's to write: no more
                                # than the machine offers.
                                gpu_ms=min(int(executor.get("gpus") or 0), machine.gpus)
                                * lasted_ms))
    return usages


def master_workers():
    try:
        state = spark.master_state()
    except spark.SparkUnavailable:
        return []
    return (state or {}).get("workers", [])


def job_bill_running(job, workers):
    """Bill a running job's ended executors; stop the job if its cost reaches its cap."""
    try:
        app, executors = spark.history_of(job.spark_app_id)
    except spark.SparkUnavailable as e:
        log.warning("job %s: history server unavailable: %s", job.pk, e)
        return
    usages, running_cost = job_usage(job, app, executors, workers)
    job_bill_usage(job, usages, final=False)
    if job.cost + usage_pending_cost(job) + running_cost >= job.max_credits:
        Job.objects.filter(pk=job.pk, status__in=(Job.STARTING, Job.RUNNING),
                           cancel_requested=False).update(
            cancel_requested=True, stop_status=Job.FAILED, status_reason="credit cap reached")


def job_settle(job, workers=None):
    """Bill a finished job's executors and release what is left of its hold, once.

    Returns True when the job is settled. Waits (False) while the history server does not yet
    show the application complete, up to DMARKET_SETTLE_GRACE after the driver's exit.
    """
    if job.settled_at is not None or not job.is_finished:
        return job.settled_at is not None
    if job.spark_app_id:
        try:
            app, executors = spark.history_of(job.spark_app_id)
        except spark.SparkUnavailable as e:
            log.warning("job %s: history server unavailable, settling later: %s", job.pk, e)
            return False
        completed = bool(app) and app.get("attempts", [{}])[-1].get("completed", False)
        waited = (timezone.now() - job.finished_at).total_seconds()
        if not completed and waited < settings.DMARKET_SETTLE_GRACE:
            return False
        if workers is None:
            workers = master_workers()
        usages, _ = job_usage(job, app, executors, workers)
        job_bill_usage(job, usages)
    job_bill_usage(job, policed_usage(job))
    job_release(job)
    Job.objects.filter(pk=job.pk, settled_at__isnull=True).update(settled_at=timezone.now())
    job.refresh_from_db()
    log.info("job %s: settled, %s credits", job.pk, job.cost)
    return True


def billing_tick():
    """One pass over the market: bill running jobs, settle finished ones. Returns how many
    jobs it settled."""
    cache = {}

    def workers():
        if "workers" not in cache:
            cache["workers"] = master_workers()
        return cache["workers"]

    _guards["bill"].run(Job.objects.filter(status=Job.RUNNING).exclude(spark_app_id=""),
                        lambda job: job_bill_running(job, workers()))
    return sum(_guards["settle"].run(
        Job.objects.filter(status__in=Job.FINISHED, settled_at__isnull=True),
        lambda job: job_settle(job, workers())))


# Each job on its own (dmarket.common.daemon.RowGuard): one that raises is backed off.
_guards = {"bill": RowGuard("billing", job_mark_stuck("billing")),
           "settle": RowGuard("billing (settling)", job_mark_stuck("billing"))}
