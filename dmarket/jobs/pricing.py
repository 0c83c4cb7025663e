"""The market's premium and prices now. They count unfinished jobs and online machines, so
they live above both; credits only turns usage into credits."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.serializers import machine_types
from dmarket.credits.models import QUANTUM, unfinished_jobs_count
from dmarket.credits.serializers import PricesSerializer
from dmarket.credits.services import premium_rate, resource_prices
from dmarket.machines.models import Machine


def market_premium_rate(extra_jobs=0):
    """The premium now; extra_jobs counts a job being submitted that is not saved yet."""
    # Spark jobs and inference jobs alike (through their runs: some are of apps above this).
    jobs = unfinished_jobs_count() + extra_jobs
    machines = Machine.objects.filter(state=Machine.ONLINE).count()
    return premium_rate(jobs, machines)


def prices_quote():
    """The prices and premium now, and what a job submitted now would pay per unit-hour: the
    API's /prices/ and the dashboard's submit form."""
    jobs = unfinished_jobs_count()
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
