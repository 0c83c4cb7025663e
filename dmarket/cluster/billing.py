"""Metering from what Spark saw: each executor's lifetime, in core-milliseconds and
GPU-milliseconds (the GPU addresses the history server shows it held), on the machine whose
worker ran it.

The history server's /allexecutors gives each executor's cores, add time and (when the driver
saw it go) remove time. Executors that were still up when the application ended have no
remove time: they end with the application (its attempt's end time), or, when the driver died
without ending it, when the launcher saw the driver exit. An executor is metered once it has
ended, under a key naming it, so running this any number of times meters it once; its usage
reaches the ledger per machine once a billing interval and when the job settles.

A pass (billing_tick) asks the history server about all its jobs first, in
DMARKET_BILLING_CONCURRENCY threads and for at most DMARKET_BILLING_DEADLINE seconds, so that
one slow host cannot hold it: a job whose answer has not come by then waits for the next pass.
Everything it writes, it writes afterwards, in its own thread, job by job.
"""

import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from dmarket.common.daemon import RowGuard
from dmarket.credits.services import (Usage, billed_accelerator, run_bill_usage, run_over_cap,
                                      run_release, usage_cost)
from dmarket.jobs.lifecycle import job_mark_settled, job_stop_at_cap
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


def worker_ids_by_ui(workers):
    """{host:port of a worker's web UI: its id}, from the master's list of workers."""
    return {urlsplit(w.get("webuiaddress", "")).netloc: w.get("id") for w in workers}


def executor_key(executor, worker_ids):
    """(id of the worker that ran the executor, or "", its host address)."""
    return (worker_ids.get(executor_worker_ui(executor), "") or "",
            executor.get("hostPort", "").rsplit(":", 1)[0])


KEYS_PER_QUERY = 5000


def machines_of(keys):
    """{(worker id, host): the Machine that ran executors under that key, or None}, read in
    two queries per KEYS_PER_QUERY keys: the newest machine with the worker's id, else the
    newest still shared at the host (a machine removed since may have run it; one still
    shared is likelier), else the newest at the host."""
    by_worker, by_host = {}, {}
    worker_ids = sorted({worker_id for worker_id, _ in keys if worker_id})
    hosts = sorted({host for _, host in keys if host})

    def chunks(items):
        return (items[i:i + KEYS_PER_QUERY] for i in range(0, len(items), KEYS_PER_QUERY))
    # Oldest first: the newest machine with a worker id or address is the last one kept.
    for chunk in chunks(worker_ids):
        for machine in Machine.objects.filter(worker_id__in=chunk).order_by("id"):
            by_worker[machine.worker_id] = machine
    for chunk in chunks(hosts):
        for machine in Machine.objects.filter(address__in=chunk).order_by("id"):
            _, shared = by_host.get(machine.address, (None, None))
            by_host[machine.address] = (machine, shared if machine.state == Machine.REMOVED
                                        else machine)
    found = {}
    for worker_id, host in keys:
        machine = by_worker.get(worker_id) if worker_id else None
        if machine is None and host:
            newest, shared = by_host.get(host, (None, None))
            machine = shared or newest
        found[(worker_id, host)] = machine
    return found


class PassWorkers(list):
    """The master's workers as a billing pass hands them to each of its jobs: indexed by web
    UI once (not once a job: thousands of workers), and with the machines that ran the pass's
    executors read in a few queries for all its jobs (machines_of), not one or two per job and
    machine.

    `histories`: the (app, executors) the pass fetched."""

    def __init__(self, workers, histories=()):
        super().__init__(workers)
        self.ids_by_ui = worker_ids_by_ui(self)
        keys = set()
        for _, executors in histories:
            for executor in executors if isinstance(executors, list) else []:
                try:
                    if executor.get("id") != "driver":
                        keys.add(executor_key(executor, self.ids_by_ui))
                except (AttributeError, TypeError, ValueError):
                    pass  # not as Spark writes it: its job's own billing raises, guarded
        self.machines = machines_of(keys)


def machine_resolver(workers):
    """A function from an executor to the Machine that ran it, or None.

    First by the worker's id (the master's list links the executor's worker UI to it, and the
    machine's agent reports the id), then by the executor's host address (machines_of). A
    pass's workers (PassWorkers) have the machines of its executors already.
    """
    known = workers if isinstance(workers, PassWorkers) else None
    worker_ids = known.ids_by_ui if known is not None else worker_ids_by_ui(workers)
    cache = dict(known.machines) if known is not None else {}

    def resolve(executor):
        key = executor_key(executor, worker_ids)
        if key not in cache:
            cache[key] = machines_of({key})[key]
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
    run = job.run
    for executor, start, end in executor_spans(job, app, executors):
        machine = resolve(executor)
        if end is None:
            running_cost += usage_cost(core_ms(executor, start, now), run.price_per_core_hour,
                                       run.premium_rate, gpu_ms(job, executor, start, now),
                                       run.price_per_gpu_hour)
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


# What the pass under way (billing_tick) fetched: {application id: (app, executors), or the
# exception its lookup raised}. Outside a pass, None: each job's history is fetched for it.
_fetched = contextvars.ContextVar("dmarket_billing_fetched", default=None)


def job_history(job, history=None):
    """(application, executors) of the job's application: `history` when the caller has it,
    else what this pass fetched, else asked now. Raises what the lookup raised."""
    if history is None:
        fetched = _fetched.get()
        if fetched is None or job.spark_app_id not in fetched:
            return spark.history_of(job.spark_app_id)
        history = fetched[job.spark_app_id]
    if isinstance(history, Exception):
        raise history
    return history


_LATE = object()


def history_lookups(app_ids, concurrency, deadline):
    """Ask the history server about the applications, and the master for its workers, in at
    most `concurrency` threads at once, for at most `deadline` seconds.

    Returns ({application id: (app, executors), or the exception its lookup raised}, the
    master's workers, how many lookups were not done in time). Lookups not done by then are
    left out, and those not started are not made; none of their requests waits longer than
    what was left of the deadline when it began (to connect, and between bytes), so their
    threads end soon after. The threads make HTTP requests only, never a database query.
    """
    app_ids = sorted(set(app_ids))
    if not app_ids:
        return {}, [], 0
    ends = time.monotonic() + deadline

    def lookup(app_id):
        try:
            return spark.history_of(app_id, deadline=ends)
        except Exception as e:  # noqa: BLE001 - the job's own pass raises it, guarded
            # Cut short by the deadline: not done in time, like one still waiting.
            return _LATE if time.monotonic() >= ends else e

    def workers():
        try:
            return master_workers()
        except Exception:  # noqa: BLE001 - as when the master does not answer
            log.exception("billing: the master's list of workers could not be read")
            return []

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency),
                              thread_name_prefix="billing-history")
    try:
        master = pool.submit(workers)
        futures = {pool.submit(lookup, app_id): app_id for app_id in app_ids}
        done, _ = wait([master, *futures], timeout=max(0.0, ends - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    found = {futures[f]: f.result() for f in done if f in futures}
    found = {app_id: history for app_id, history in found.items() if history is not _LATE}
    return found, (master.result() if master in done else []), len(app_ids) - len(found)


def job_bill_running(job, workers, history=None):
    """Bill a running job's ended executors; stop the job if its cost reaches its cap.

    `history`: its application's (app, executors) when the caller has fetched them."""
    try:
        app, executors = job_history(job, history)
    except spark.SparkUnavailable as e:
        log.warning("job %s: history server unavailable: %s", job.pk, e)
        return
    usages, running_cost = job_usage(job, app, executors, workers)
    run_bill_usage(job.run, usages, final=False)
    if run_over_cap(job.run, running_cost):
        job_stop_at_cap(job)


def job_settle(job, workers=None, history=None):
    """Bill a finished job's executors and release what is left of its hold, once.

    Returns True when the job is settled. Waits (False) while the history server does not yet
    show the application complete, up to DMARKET_SETTLE_GRACE after the driver's exit.
    `history`: its application's (app, executors) when the caller has fetched them.
    """
    if job.settled_at is not None or not job.is_finished:
        return job.settled_at is not None
    if job.spark_app_id:
        try:
            app, executors = job_history(job, history)
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
        run_bill_usage(job.run, usages)
    run_bill_usage(job.run, policed_usage(job))
    run_release(job.run)
    job_mark_settled(job)
    log.info("job %s: settled, %s credits", job.pk, job.run.cost)
    return True


def billing_tick():
    """One pass over the market: bill running jobs, settle finished ones. Returns how many
    jobs it settled.

    The history of every job to handle is looked up first, concurrently and within the pass's
    deadline (history_lookups); a job whose lookup is not done by then is left for the next
    pass. Then each job is billed or settled on its own, in this thread."""
    bill, settle = _guards["bill"], _guards["settle"]
    running = list(Job.objects.filter(status=Job.RUNNING).exclude(spark_app_id="")
                   .exclude(pk__in=bill.backed_off()).select_related("run__user"))
    finished = list(Job.objects.filter(status__in=Job.FINISHED, settled_at__isnull=True)
                    .exclude(pk__in=settle.backed_off()).select_related("run__user"))
    app_ids = {job.spark_app_id for job in running + finished if job.spark_app_id}
    deadline = settings.DMARKET_BILLING_DEADLINE
    fetched, workers, late = history_lookups(app_ids, settings.DMARKET_BILLING_CONCURRENCY,
                                             deadline)
    if late:
        log.warning("billing: %d of %d history lookup(s) not done within %s s; their jobs wait "
                    "for the next pass", late, len(app_ids), deadline)
    workers = PassWorkers(workers, [history for history in fetched.values()
                                    if isinstance(history, tuple)])
    token = _fetched.set(fetched)
    try:
        bill.run([job for job in running if job.spark_app_id in fetched],
                 lambda job: job_bill_running(job, workers))
        return sum(settle.run(
            [job for job in finished if not job.spark_app_id or job.spark_app_id in fetched],
            lambda job: job_settle(job, workers)))
    finally:
        _fetched.reset(token)


# Each job on its own (dmarket.common.daemon.RowGuard): one that raises is backed off.
_guards = {"bill": RowGuard("billing", job_mark_stuck("billing")),
           "settle": RowGuard("billing (settling)", job_mark_stuck("billing"))}
