import os

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.api import (PaymentRequired, choice_param, int_param, list_all_param,
                                visible_to)
from dmarket.common.serializers import ValuesSerializer
from dmarket.credits.services import InsufficientCredits
from dmarket.envs.models import Environment
from dmarket.files.services import (job_credential_check, job_input_source, job_results,
                                    result_file, result_record)
from dmarket.files.storage import blob_redirect, blob_response
from dmarket.files.views import BINARY

from .models import Job
from .serializers import (JobSerializer, JobSubmitSerializer, LogSerializer,
                          ResultFileSerializer)
from .services import job_cancel, job_submit

STATUSES = Job.Status.values
LOG_MAX_LINES = 10000
LOG_MAX_BYTES = 1024 * 1024


def job_for(request, pk):
    return get_object_or_404(visible_to(Job.objects.select_related("user", "run"), request.user),
                             pk=pk)


def log_lines(chunk):
    """The chunk's lines, each with its newline, then any unterminated rest. Only a newline
    ends a line: a carriage return alone (a progress bar redrawing itself) stays inside it,
    or a running job's log would stop at the first one until the job ended."""
    lines = chunk.split(b"\n")
    rest = lines.pop()
    return [line + b"\n" for line in lines] + ([rest] if rest else [])


class JobListView(generics.ListCreateAPIView):
    serializer_class = JobSerializer
    rows = ValuesSerializer(JobSerializer)

    ordering = ("-created_at", "-id")

    def filters(self):
        statuses = choice_param(self.request, "status", STATUSES)
        filters = {} if list_all_param(self.request) else {"user": self.request.user}
        if statuses:
            filters["status__in"] = statuses
        return filters

    def get_queryset(self):
        return Job.objects.filter(**self.filters()).order_by(*self.ordering)

    @extend_schema(operation_id="jobs_list", parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=STATUSES,
                         description="Only jobs in these states (comma-separated)."),
        OpenApiParameter("all", OpenApiTypes.BOOL, description="Operators: every user's."),
    ])
    def get(self, request):
        page = self.paginate_queryset(self.rows.rows_counted(self.filters(), self.ordering))
        return self.get_paginated_response(page)

    @extend_schema(request=JobSubmitSerializer,
                   responses={201: JobSerializer, 200: JobSerializer})
    def post(self, request):
        serializer = JobSubmitSerializer(data=request.data, context={"user": request.user})
        serializer.is_valid(raise_exception=True)
        try:
            job, created = job_submit(request.user, serializer.validated_data)
        except InsufficientCredits as e:
            raise PaymentRequired(
                f"This job may cost up to {e.needed} credits but only {e.available} are "
                "available; lower max_credits or wait for running jobs to finish."
            ) from None
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(JobSerializer(job).data, status=code)


class JobDetailView(APIView):
    @extend_schema(responses={200: JobSerializer})
    def get(self, request, pk):
        return Response(JobSerializer(job_for(request, pk)).data)


class JobCancelView(APIView):
    @extend_schema(request=None, responses={200: JobSerializer, 202: JobSerializer})
    def post(self, request, pk):
        job = job_for(request, pk)
        by = "its owner" if job.user_id == request.user.pk else f"operator {request.user}"
        done = job_cancel(job, reason=f"cancelled by {by}")
        code = status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
        return Response(JobSerializer(job).data, status=code)


class JobLogView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.INT, description="Byte offset to read from "
                             "(the previous answer's `next`); default 0."),
            OpenApiParameter("size", OpenApiTypes.INT,
                             description=f"At most this many lines (1 to {LOG_MAX_LINES})."),
        ],
        responses={200: LogSerializer},
    )
    def get(self, request, pk):
        job = job_for(request, pk)
        start = int_param(request, "from", 0, 0)
        size = int_param(request, "size", 1000, 1, LOG_MAX_LINES)
        # Read the state before the file: a job seen finished has written all its log.
        finished = job.is_finished
        lines, end, length = [], start, 0
        try:
            with open(job.log_path, "rb") as f:
                length = os.fstat(f.fileno()).st_size
                if start > length:
                    raise ValidationError(
                        {"from": [f"Beyond the end of the log ({length} bytes)."]})
                f.seek(start)
                chunk = f.read(LOG_MAX_BYTES)
        except FileNotFoundError:
            if start > 0:
                raise ValidationError({"from": ["This job has no log yet."]}) from None
            chunk = b""
        full = len(chunk) == LOG_MAX_BYTES
        for raw in log_lines(chunk):
            if len(lines) >= size:
                break
            # A line still being written waits for the next call, unless nothing more will
            # be added to it, or it alone fills a whole read (then it comes in pieces).
            partial = not raw.endswith(b"\n")
            last_words = finished and not full
            forced = full and not lines
            if partial and not (last_words or forced):
                break
            lines.append(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
            end += len(raw)
        return Response({"lines": lines, "offset": start, "next": end,
                         "ended": finished and end >= length, "status": job.status})


class JobResultListView(generics.ListAPIView):
    serializer_class = ResultFileSerializer

    def get_queryset(self):
        return job_results(job_for(self.request, self.kwargs["pk"]))

    @extend_schema(operation_id="jobs_results_list")
    def get(self, request, pk):
        return self.list(request)


class JobResultFileView(APIView):
    @extend_schema(operation_id="jobs_results_download",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, pk, path):
        job = job_for(request, pk)
        record = result_record(job, path)
        if record is not None and record.blob:
            return blob_response(record.blob, record.size, path.rsplit("/", 1)[-1],
                                 record.sha256)
        target = result_file(job, path)
        if target is None:
            raise Http404("No such result file.")
        response = FileResponse(open(target, "rb"), as_attachment=True, filename=target.name)
        if record is not None:
            response["X-Content-SHA256"] = record.sha256
        return response


class JobInputView(APIView):
    """What Spark fetches for a job's dmarket:// files: no user token, only the job's
    credential in the URL, which opens only that job's pinned files while it is unfinished."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="jobs_inputs_download", responses=BINARY, auth=[])
    def get(self, request, pk, input_id, token, filename):
        job = Job.objects.filter(pk=pk).first()
        job_credential_check(job, token)
        found = job_input_source(job, input_id)
        if found is None:
            raise Http404(f"Job {job.pk} names no such file.")
        key, size, path = found
        if key:
            return blob_redirect(key) or blob_response(key, size, filename)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=filename)


class JobEnvironmentView(APIView):
    """What a job's executors fetch for its built environment: the job's credential in the
    URL (as for its dmarket:// files), while it is unfinished."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="jobs_environment_download",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, auth=[])
    def get(self, request, pk, token, filename):
        job = Job.objects.select_related("environment").filter(pk=pk).first()
        job_credential_check(job, token)
        env = job.environment
        if env is None or env.status != Environment.READY:
            raise NotFound(f"Job {job.pk} has no built environment.")
        redirect = blob_redirect(env.blob) if env.blob else None
        if redirect is not None:
            return redirect
        return FileResponse(open(env.archive_path, "rb"), as_attachment=True,
                            filename=filename)
