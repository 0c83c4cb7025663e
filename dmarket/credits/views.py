from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.api import NewestFirstCursor, choice_param
from dmarket.common.serializers import ValuesSerializer, machine_types
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .models import QUANTUM, Account, LedgerEntry
from .serializers import CreditsSerializer, LedgerEntrySerializer, PricesSerializer
from .services import premium_rate, resource_prices

KINDS = [k for k, _ in LedgerEntry.KINDS]


class CreditsView(APIView):
    @extend_schema(responses={200: CreditsSerializer})
    def get(self, request):
        account, _ = Account.objects.get_or_create(user=request.user)
        data = {name: getattr(account, name)
                for name in ("balance", "held", "available", "earned", "spent")}
        return Response(CreditsSerializer(data).data)


class TransactionListView(generics.GenericAPIView):
    serializer_class = LedgerEntrySerializer
    pagination_class = NewestFirstCursor
    rows = ValuesSerializer(LedgerEntrySerializer)

    @extend_schema(parameters=[
        OpenApiParameter("kind", OpenApiTypes.STR, enum=KINDS,
                         description="Only rows of these kinds (comma-separated)."),
    ])
    def get(self, request):
        qs = LedgerEntry.objects.filter(user=request.user)
        kinds = choice_param(request, "kind", [k.upper() for k in KINDS])
        if kinds:
            qs = qs.filter(kind__in=[k.lower() for k in kinds])
        page = self.paginate_queryset(self.rows.values(qs))
        return self.get_paginated_response(self.rows.data(page))


def prices_quote():
    """The prices and premium now, and what a job submitted now would pay per unit-hour: the
    API's /prices/ and the dashboard's submit form."""
    jobs = Job.objects.filter(status__in=Job.UNFINISHED).count()
    machines = Machine.objects.filter(state=Machine.ONLINE).count()
    premium = premium_rate(jobs, machines)
    prices = resource_prices()
    return {
        "unit": "credits per hour of one core or one GPU",
        "resources": prices,
        "machine_types": machine_types(),
        "premium_rate": premium,
        "unfinished_jobs": jobs,
        "online_machines": machines,
        # What a job submitted now pays per unit-hour (its own submission included).
        "effective": {name: (price * premium_rate(jobs + 1, machines)).quantize(QUANTUM)
                      for name, price in prices.items()},
        "default_job_cap": settings.DMARKET_DEFAULT_JOB_CAP,
        "signup_grant": settings.DMARKET_SIGNUP_GRANT,
    }


class PricesView(APIView):
    @extend_schema(responses={200: PricesSerializer})
    def get(self, request):
        return Response(PricesSerializer(prices_quote()).data)
