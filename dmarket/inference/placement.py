"""Which machines run which jobs: regular jobs from their live executors in the history
server, inference jobs from the batches they ran in the last 10 s."""

import logging

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from dmarket.cluster import spark
from dmarket.cluster.billing import machine_resolver, master_workers
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .models import InferenceBatch
from .services import RATE_WINDOW

log = logging.getLogger(__name__)


def regular_job_placements(resolve):
    """(machine id, job, cores) for each live executor of each running job."""
    running = (Job.objects.filter(status=Job.RUNNING).exclude(spark_app_id="")
               .select_related("user"))
    for job in running:
        try:
            executors = spark.history_executors(job.spark_app_id) or []
        except spark.SparkUnavailable as e:
            log.warning("cluster status: job %s's executors unknown: %s", job.pk, e)
            continue
        for executor in executors:
            if executor.get("id") == "driver" or executor.get("removeTime"):
                continue
            machine = resolve(executor)
            if machine is not None:
                yield machine.pk, job, int(executor.get("totalCores", 0))


def cluster_status(user):
    """Every machine not removed, its cores in use, and the jobs running on it."""
    machines = list(Machine.objects.exclude(state=Machine.REMOVED).select_related("user")
                    .order_by("id"))
    rows = {m.pk: {"id": m.pk, "name": m.name, "address": m.address, "state": m.state,
                   "cores": m.cores, "cores_in_use": m.cores_in_use, "jobs": []}
            for m in machines}
    if Job.objects.filter(status=Job.RUNNING).exclude(spark_app_id="").exists():
        resolve = machine_resolver(master_workers())
        for machine_id, job, cores in regular_job_placements(resolve):
            if machine_id in rows:
                rows[machine_id]["jobs"].append({"kind": "job", "id": job.pk,
                                                 "owner": job.user.username, "cores": cores})
    recent = (InferenceBatch.objects
              .filter(finished_at__gt=timezone.now() - RATE_WINDOW, machine__isnull=False,
                      job__status="RUNNING")
              .values("machine", "job", "job__user__username")
              .annotate(executors=Count("executor", distinct=True))
              .order_by("machine", "job"))
    for row in recent:
        if row["machine"] in rows:
            rows[row["machine"]]["jobs"].append({
                "kind": "inference", "id": row["job"], "owner": row["job__user__username"],
                "cores": row["executors"] * settings.DMARKET_EXECUTOR_CORES})
    return list(rows.values())
