import json

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.api import PaymentRequired, choice_param, list_all_param, visible_to
from dmarket.credits.services import InsufficientCredits

from .models import InferenceJob, InferenceOutput
from .placement import cluster_status
from .serializers import (
    BatchSizeSerializer,
    ClusterMachineSerializer,
    InferenceJobSerializer,
    InferenceSubmitSerializer,
    OutputSerializer,
    RatesSerializer,
    StatsSerializer,
)
from .services import (
    inference_cancel,
    inference_set_batch,
    inference_stats,
    inference_submit,
)

STATUSES = InferenceJob.Status.values


def inference_for(request, pk):
    return get_object_or_404(visible_to(InferenceJob.objects.select_related("user", "run"),
                                        request.user), pk=pk)


class InferenceListView(generics.ListCreateAPIView):
    serializer_class = InferenceJobSerializer

    def get_queryset(self):
        statuses = choice_param(self.request, "status", STATUSES)
        qs = InferenceJob.objects.select_related("user", "run")
        if not list_all_param(self.request):
            qs = qs.filter(user=self.request.user)
        if statuses:
            qs = qs.filter(status__in=statuses)
        return qs.order_by("-created_at", "-id")

    @extend_schema(operation_id="inference_list", parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=STATUSES,
                         description="Only jobs in these states (comma-separated)."),
        OpenApiParameter("all", OpenApiTypes.BOOL, description="Operators: every user's."),
    ])
    def get(self, request):
        return self.list(request)

    @extend_schema(request=InferenceSubmitSerializer, responses={201: InferenceJobSerializer})
    def post(self, request):
        serializer = InferenceSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            ijob = inference_submit(request.user, serializer.validated_data)
        except InsufficientCredits as e:
            raise PaymentRequired(
                f"This job may cost up to {e.needed} credits but only {e.available} are "
                "available; lower max_credits or wait for running jobs to finish.") from None
        return Response(InferenceJobSerializer(ijob).data, status=status.HTTP_201_CREATED)


class InferenceDetailView(APIView):
    @extend_schema(responses={200: InferenceJobSerializer})
    def get(self, request, pk):
        return Response(InferenceJobSerializer(inference_for(request, pk)).data)

    @extend_schema(request=BatchSizeSerializer, responses={200: InferenceJobSerializer})
    def patch(self, request, pk):
        ijob = inference_for(request, pk)
        serializer = BatchSizeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        inference_set_batch(ijob, serializer.validated_data["batch_size"])
        return Response(InferenceJobSerializer(ijob).data)


class InferenceCancelView(APIView):
    @extend_schema(request=None, responses={200: InferenceJobSerializer,
                                            202: InferenceJobSerializer})
    def post(self, request, pk):
        ijob = inference_for(request, pk)
        by = "its owner" if ijob.user_id == request.user.pk else f"operator {request.user}"
        done = inference_cancel(ijob, reason=f"cancelled by {by}")
        code = status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
        return Response(InferenceJobSerializer(ijob).data, status=code)


class InferenceStatsView(APIView):
    @extend_schema(responses={200: StatsSerializer})
    def get(self, request, pk):
        return Response(StatsSerializer(inference_stats(inference_for(request, pk))).data)


class InferenceRatesView(APIView):
    @extend_schema(responses={200: RatesSerializer})
    def get(self, request):
        now = timezone.now()
        jobs = (InferenceJob.objects.filter(user=request.user, status=InferenceJob.RUNNING)
                .order_by("id"))
        rows = []
        for ijob in jobs:
            stats = inference_stats(ijob, now)
            rows.append({"job": ijob.pk, "name": ijob.name, "status": ijob.status,
                         "count": stats["count"], "rate_10s": stats["rate_10s"],
                         "rate_total": stats["rate_total"]})
        rates = [r["rate_10s"] for r in rows]
        ratio = max(rates) / min(rates) if len(rates) > 1 and min(rates) > 0 else None
        return Response(RatesSerializer({"jobs": rows, "max_over_min": ratio}).data)


class InferenceResultListView(generics.ListAPIView):
    serializer_class = OutputSerializer

    def get_queryset(self):
        ijob = inference_for(self.request, self.kwargs["pk"])
        return InferenceOutput.objects.filter(job=ijob).order_by("index")

    @extend_schema(operation_id="inference_results_list")
    def get(self, request, pk):
        return self.list(request)


class InferenceResultDownloadView(APIView):
    @extend_schema(operation_id="inference_results_download",
                   responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY})
    def get(self, request, pk):
        ijob = inference_for(request, pk)
        rows = (InferenceOutput.objects.filter(job=ijob).order_by("index")
                .values_list("index", "name", "output"))

        def lines():
            for index, name, output in rows.iterator(chunk_size=2000):
                yield json.dumps({"index": index, "name": name, "output": output}) + "\n"

        response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="inference-{ijob.pk}.jsonl"'
        return response


class ClusterStatusView(APIView):
    @extend_schema(responses={200: ClusterMachineSerializer(many=True)})
    def get(self, request):
        return Response(ClusterMachineSerializer(cluster_status(request.user), many=True).data)
