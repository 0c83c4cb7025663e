"""The rules of inference jobs: submit, cancel, batch size, recording batches, billing,
finishing, statistics."""

import math
from datetime import timedelta

from django.db import transaction
from django.db.models import Max, Min, Sum
from django.utils import timezone

from dmarket.common.api import Conflict
from dmarket.credits.models import Run
from dmarket.credits.services import (
    Usage,
    account_lock,
    run_hold,
    run_open,
    run_over_cap,
    run_release,
    usage_post,
    usage_record,
)
from dmarket.jobs.inputs import inputs_pin
from dmarket.jobs.pricing import market_premium_rate

from .lifecycle import (inference_end, inference_mark_settled, inference_request_stop,
                        inference_stop_at_cap)
from .models import InferenceBatch, InferenceJob, InferenceOutput
from .pins import inference_inputs_resolve
from .rates import spread_rate

RATE_WINDOW = timedelta(seconds=10)


def inference_submit(user, fields):
    """Create a queued inference job, its files pinned, and hold its credit cap. `fields` are
    the validated submit fields. Raises ValidationError for what they name (pins.py) and
    InsufficientCredits; either way nothing is written."""
    with transaction.atomic():
        account_lock(user)
        fields, pins = inference_inputs_resolve(user, fields)
        run = run_open(user, fields["max_credits"], "cpu", market_premium_rate(extra_jobs=1))
        ijob = InferenceJob.objects.create(
            user=user, run=run, name=fields["name"], model=fields["model"],
            weights=fields["weights"], data=fields["data"], data_files=fields["data_files"],
            batch_size=fields["batch_size"], input_count=fields["input_count"])
        inputs_pin(run, pins)
        run_hold(run, f"inference job {ijob.pk}")
        return ijob


def inference_cancel(ijob, reason="cancelled by its owner"):
    """A queued job is cancelled at once; a running one is stopped by the inference server
    before its next batches. Returns True when it is CANCELLED now. Conflict if finished."""
    with transaction.atomic():
        locked = InferenceJob.objects.select_for_update().get(pk=ijob.pk)
        if locked.is_finished:
            raise Conflict(f"Inference job {ijob.pk} has already finished ({locked.status}).")
        queued = locked.status == InferenceJob.QUEUED
        if not queued:
            inference_request_stop(locked, InferenceJob.CANCELLED, reason)
    if queued:
        inference_finish(ijob, InferenceJob.CANCELLED, reason)
    ijob.refresh_from_db()
    return ijob.is_finished


def inference_set_batch(ijob, batch_size):
    """Change the batch size of an unfinished job; its next batches use it."""
    changed = InferenceJob.objects.filter(pk=ijob.pk, status__in=InferenceJob.UNFINISHED) \
        .update(batch_size=batch_size)
    ijob.refresh_from_db()
    if not changed:
        raise Conflict(f"Inference job {ijob.pk} has already finished ({ijob.status}).")
    return ijob


def inference_record(ijob, results, inputs, machine_of):
    """Write the outputs and the batch records of finished batches, in one transaction.

    An output that exists already (its batch ran twice) is left as it was: one per input.
    results: the executors' batch dicts; inputs: index -> (name, locator); machine_of: (executor,
    host) -> Machine or None. Returns how many outputs were new.
    """
    now = timezone.now()
    outputs, batches = [], []
    for result in results:
        outputs += [InferenceOutput(job=ijob, index=index, name=inputs[index][0], output=values)
                    for index, values in result["outputs"]]
        # The executor tells how long before its task's end the batch ended: placed on this
        # clock (the machines' clocks may differ).
        finished = now - timedelta(milliseconds=result["after_ms"])
        batches.append(InferenceBatch(
            job=ijob, first_index=result["first"], size=result["size"],
            processing_ms=result["processing_ms"], core_ms=result["core_ms"],
            gpu_ms=result.get("gpu_ms", 0),
            executor=result["executor"], host=result["host"],
            machine=machine_of(result["executor"], result["host"]), finished_at=finished,
            started_at=finished - timedelta(milliseconds=result["wall_ms"])))
    with transaction.atomic():
        before = InferenceOutput.objects.filter(job=ijob).count()
        InferenceOutput.objects.bulk_create(outputs, ignore_conflicts=True)
        InferenceBatch.objects.bulk_create(batches, ignore_conflicts=True)
        return InferenceOutput.objects.filter(job=ijob).count() - before


def inference_bill(ijob, final=False):
    """Meter the job's recorded batches and post its usage (see usage_post).

    New batches of each machine become one usage record: they are given its key by a
    conditional UPDATE of those without one, and the record is written in the same
    transaction, so metering that stops half-way and runs again meters every batch once.
    Batches that ran on no registered machine are not billed. Returns the credits newly
    charged.
    """
    from dmarket.machines.models import Machine

    unkeyed = InferenceBatch.objects.filter(job=ijob, usage_key="", machine__isnull=False)
    groups = list(unkeyed.values_list("machine").annotate(last=Max("id")))
    machines = Machine.objects.in_bulk([machine_id for machine_id, _ in groups])
    # Read now: the caller's copy may be older than its last posting.
    run = Run.objects.select_related("user").get(pk=ijob.run_id)
    for machine_id, last in groups:
        key = f"inference:{ijob.pk}:machine:{machine_id}:batch:{last}"
        with transaction.atomic():
            if not InferenceBatch.objects.filter(job=ijob, usage_key="", machine_id=machine_id,
                                                 id__lte=last).update(usage_key=key):
                continue
            used = InferenceBatch.objects.filter(job=ijob, usage_key=key).aggregate(
                core_ms=Sum("core_ms"), gpu_ms=Sum("gpu_ms"))
            usage_record(run, [Usage(key=key, machine=machines[machine_id],
                                     core_ms=used["core_ms"] or 0, gpu_ms=used["gpu_ms"] or 0)])
    charged = usage_post(run, final=final)
    if not final and run_over_cap(run):
        inference_stop_at_cap(ijob)
    return charged


def inference_finish(ijob, status, reason):
    """Record the job's end (once), bill what it ran and release the rest of its hold."""
    # Not recorded by this call: settled already, or still going (a queued job never
    # succeeds); recorded by a call that stopped before settling: settled now.
    if not inference_end(ijob, status, reason) and (
            not ijob.is_finished or ijob.settled_at is not None):
        return ijob
    inference_bill(ijob, final=True)
    run_release(Run.objects.select_related("user").get(pk=ijob.run_id))
    inference_mark_settled(ijob)
    return ijob


# --- Statistics -------------------------------------------------------------------------------

def weighted_percentile(pairs, total, p):
    """Nearest-rank percentile of values each counted `weight` times: pairs sorted by value."""
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for value, weight in pairs:
        seen += weight
        if seen >= rank:
            return value
    return pairs[-1][0]


def inference_rate(ijob, now=None):
    """Queries per second over the last 10 s (up to the job's end once it has ended), each
    batch's queries spread over the time it ran (see rates.py)."""
    end = ijob.finished_at or now or timezone.now()
    start = end - RATE_WINDOW
    if ijob.started_at is not None and ijob.started_at > start:
        start = ijob.started_at
    if end <= start:
        return 0.0
    spans = [((b - end).total_seconds(), (f - end).total_seconds(), size)
             for b, f, size in InferenceBatch.objects.filter(
                 job=ijob, finished_at__gt=start, started_at__lt=end)
             .values_list("started_at", "finished_at", "size")]
    return spread_rate(spans, (start - end).total_seconds(), 0.0)


def inference_machines(ijob, now=None):
    """The machines (and hosts) that ran its batches in the last 10 s (before its end)."""
    end = ijob.finished_at or now or timezone.now()
    rows = (InferenceBatch.objects.filter(job=ijob, finished_at__gt=end - RATE_WINDOW,
                                          finished_at__lte=end)
            .values("host", "machine").distinct().order_by("host", "machine"))
    return [{"host": r["host"], "machine": r["machine"]} for r in rows]


def inference_stats(ijob, now=None):
    """Count, mean, std and percentiles of query time, 10 s and overall rates, machines.

    A query's processing time is that of the batch it was in (every input of a batch waits
    for the whole batch)."""
    now = now or timezone.now()
    pairs = sorted(InferenceBatch.objects.filter(job=ijob)
                   .values_list("processing_ms", "size"))
    count = sum(size for _, size in pairs)
    stats = {"job": ijob.pk, "status": ijob.status, "batch_size": ijob.batch_size,
             "inputs": ijob.input_count, "count": count, "mean_ms": None, "std_ms": None,
             "p25_ms": None, "p50_ms": None, "p75_ms": None, "p99_ms": None,
             "rate_10s": inference_rate(ijob, now), "rate_total": 0.0,
             "core_ms_per_query": None, "machines": inference_machines(ijob, now)}
    if count:
        mean = sum(ms * size for ms, size in pairs) / count
        variance = sum(size * (ms - mean) ** 2 for ms, size in pairs) / count
        stats.update(mean_ms=mean, std_ms=math.sqrt(variance))
        for p in (25, 50, 75, 99):
            stats[f"p{p}_ms"] = weighted_percentile(pairs, count, p)
        span = InferenceBatch.objects.filter(job=ijob).aggregate(
            first=Min("finished_at"), core_ms=Sum("core_ms"))
        start = ijob.started_at or span["first"]
        seconds = ((ijob.finished_at or now) - start).total_seconds()
        stats["rate_total"] = count / seconds if seconds > 0 else 0.0
        stats["core_ms_per_query"] = span["core_ms"] / count
    return stats
