"""GET /api/metrics/: the market's state in Prometheus' text format (prometheus-client),
read from the database at each scrape, for operators (a staff token: Prometheus sends it as
`authorization: {type: Token, credentials: …}`)."""

from django.db.models import Count, Max, Min
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView


class MarketCollector:
    def collect(self):
        from dmarket.credits.models import LedgerEntry
        from dmarket.envs.models import Environment
        from dmarket.jobs.models import Job
        from dmarket.machines.models import Machine

        now = timezone.now()

        def by(name, help_text, label, model, field, values):
            family = GaugeMetricFamily(name, help_text, labels=[label])
            counts = dict(model.objects.values_list(field).annotate(n=Count("pk")))
            for value in values:
                family.add_metric([value], counts.get(value, 0))
            return family

        yield by("dmarket_jobs", "Jobs by status.", "status", Job, "status",
                 [s for s, _ in Job.STATUSES])
        yield by("dmarket_machines", "Machines by state.", "state", Machine, "state",
                 [s for s, _ in Machine.STATES])
        yield by("dmarket_environments", "Job environments by status.", "status",
                 Environment, "status", [s for s, _ in Environment.STATUSES])
        yield by("dmarket_ledger_rows", "Ledger rows by kind.", "kind", LedgerEntry, "kind",
                 [LedgerEntry.GRANT, LedgerEntry.HOLD, LedgerEntry.RELEASE, LedgerEntry.CHARGE,
                  LedgerEntry.EARNING])
        oldest = Job.objects.filter(status=Job.QUEUED).aggregate(t=Min("created_at"))["t"]
        yield GaugeMetricFamily("dmarket_queue_wait_seconds",
                                "How long the oldest queued job has waited.",
                                value=(now - oldest).total_seconds() if oldest else 0)
        unsettled = Job.objects.filter(status__in=Job.FINISHED, settled_at__isnull=True)
        ended = unsettled.aggregate(t=Min("finished_at"))["t"]
        yield GaugeMetricFamily("dmarket_unsettled_seconds",
                                "How long the longest-finished unsettled job waits for its bill.",
                                value=(now - ended).total_seconds() if ended else 0)
        beat = Machine.objects.filter(state=Machine.ONLINE).aggregate(
            t=Min("last_heartbeat"), last=Max("last_heartbeat"))
        yield GaugeMetricFamily("dmarket_oldest_heartbeat_seconds",
                                "Age of the oldest last heartbeat among online machines.",
                                value=(now - beat["t"]).total_seconds() if beat["t"] else 0)


class MetricsView(APIView):
    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request):
        if not request.user.is_staff:
            raise PermissionDenied("Metrics are for operators.")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MarketCollector())
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
