from decimal import Decimal

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.jobs.views import int_param, job_for

from . import spark
from .billing import (PassWorkers, core_ms, executor_spans, machine_resolver,
                      master_workers)
from .serializers import ExecutorLogSerializer, ExecutorSerializer

LOG_MAX_BYTES = 1024 * 1024


class SparkUnavailableError(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The Spark cluster does not answer; try again shortly."


def job_history(job):
    """(app, executors) as the history server knows them; (None, []) before the job has an
    app."""
    if not job.spark_app_id:
        return None, []
    try:
        return spark.history_of(job.spark_app_id)
    except spark.SparkUnavailable as e:
        raise SparkUnavailableError(f"The Spark history server does not answer: {e}") from None


def job_executors(job):
    """The job's executors as the history server knows them; [] before the job has an app."""
    return list(executor_spans(job, *job_history(job)))


class ExecutorListView(APIView):
    @extend_schema(responses={200: ExecutorSerializer(many=True)})
    def get(self, request, pk):
        job = job_for(request, pk)
        app, executors = job_history(job)
        # The machines of all its executors in one lookup, as a billing pass reads them.
        resolve = machine_resolver(PassWorkers(master_workers(), [(app, executors)]))
        rows = []
        for executor, start, end in executor_spans(job, app, executors):
            machine = resolve(executor)
            rows.append({
                "id": executor["id"],
                "host": executor.get("hostPort", "").rsplit(":", 1)[0],
                "machine": machine.pk if machine else None,
                "cores": executor.get("totalCores", 0),
                "started_at": start,
                "ended_at": end,
                "end_reason": executor.get("removeReason", "") or "",
                "core_seconds": (Decimal(core_ms(executor, start, end)) / 1000
                                 if end else None),
                "logs": {kind: reverse("job-executor-log", args=[job.pk, executor["id"]])
                         + f"?type={kind}"
                         for kind in sorted(executor.get("executorLogs") or {})},
            })
        return Response(ExecutorSerializer(rows, many=True).data)


class ExecutorLogView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=["stdout", "stderr"]),
            OpenApiParameter("from", OpenApiTypes.INT, description="Byte offset; default 0."),
            OpenApiParameter("size", OpenApiTypes.INT,
                             description=f"At most this many bytes (1 to {LOG_MAX_BYTES})."),
        ],
        responses={200: ExecutorLogSerializer},
    )
    def get(self, request, pk, executor_id):
        job = job_for(request, pk)
        kind = request.query_params.get("type", "stderr")
        if kind not in ("stdout", "stderr"):
            raise ValidationError({"type": ["Use stdout or stderr."]})
        start = int_param(request, "from", 0, 0)
        size = int_param(request, "size", 64 * 1024, 1, LOG_MAX_BYTES)
        for executor, _, _ in job_executors(job):
            if executor["id"] == executor_id:
                url = (executor.get("executorLogs") or {}).get(kind)
                break
        else:
            raise NotFound(f"Job {job.pk} has no executor {executor_id!r}.")
        if not url:
            raise NotFound(f"Executor {executor_id} has no {kind} log.")
        try:
            text, begin, end, total = spark.worker_log(url, start, size, master_workers(),
                                                       job.spark_app_id, executor_id)
        except spark.SparkUnavailable as e:
            raise SparkUnavailableError(
                f"The worker that ran executor {executor_id} does not answer ({e}); its logs "
                "are in that worker's work directory.") from None
        return Response({"text": text, "offset": begin, "next": end, "length": total})
