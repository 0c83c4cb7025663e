"""GET /api/metrics/: the market's state in Prometheus' text format (prometheus-client),
read from the database at each scrape, for operators (a staff token: Prometheus sends it as
`authorization: {type: Token, credentials: …}`)."""

from datetime import timedelta

from django.db.models import Avg, Count, F, Max, Min
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView


class MarketCollector:
    def collect(self):
        from dmarket.credits.models import LedgerEntry, UsageRecord
        from dmarket.envs.models import Environment
        from dmarket.inference.models import InferenceJob
        from dmarket.inference.services import inference_rate
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
                 Job.Status.values)
        yield by("dmarket_machines", "Machines by state.", "state", Machine, "state",
                 Machine.State.values)
        yield by("dmarket_environments", "Job environments by status.", "status",
                 Environment, "status", Environment.Status.values)
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
        yield GaugeMetricFamily(
            "dmarket_heartbeats_last_minute", "Machines that sent a heartbeat in the last 60 s.",
            value=Machine.objects.filter(last_heartbeat__gte=now - timedelta(minutes=1)).count())
        lag = Job.objects.filter(settled_at__gte=now - timedelta(hours=1)).exclude(
            finished_at=None).aggregate(mean=Avg(F("settled_at") - F("finished_at")),
                                        most=Max(F("settled_at") - F("finished_at")))
        yield GaugeMetricFamily(
            "dmarket_bill_lag_seconds", "Jobs settled in the last hour: mean time from the "
            "driver's exit to the job's settled bill.",
            value=lag["mean"].total_seconds() if lag["mean"] else 0)
        yield GaugeMetricFamily(
            "dmarket_bill_lag_max_seconds", "The same, the longest.",
            value=lag["most"].total_seconds() if lag["most"] else 0)
        yield GaugeMetricFamily(
            "dmarket_usage_unposted", "Usage records metered and not yet posted to the ledger.",
            value=UsageRecord.objects.filter(posted_key="").count())
        yield from daemon_families(now)
        rates = GaugeMetricFamily("dmarket_inference_rate",
                                  "Each running inference job's queries per second (10 s).",
                                  labels=["job"])
        for ijob in InferenceJob.objects.filter(status=InferenceJob.RUNNING):
            rates.add_metric([str(ijob.pk)], inference_rate(ijob, now))
        yield rates


def daemon_families(now):
    """Each daemon loop's last pass (DaemonPass, written by run_loop)."""
    from dmarket.common.models import DaemonPass

    seconds = GaugeMetricFamily("dmarket_daemon_pass_seconds",
                                "How long each daemon's last pass took.", labels=["daemon"])
    age = GaugeMetricFamily("dmarket_daemon_pass_age_seconds",
                            "How long ago each daemon's last pass ended.", labels=["daemon"])
    passes = CounterMetricFamily("dmarket_daemon_passes", "Passes of each daemon.",
                                 labels=["daemon"])
    failed = CounterMetricFamily("dmarket_daemon_failed_passes",
                                 "Passes of each daemon that raised.", labels=["daemon"])
    for row in DaemonPass.objects.order_by("name"):
        seconds.add_metric([row.name], row.seconds)
        age.add_metric([row.name], (now - row.finished_at).total_seconds())
        passes.add_metric([row.name], row.passes)
        failed.add_metric([row.name], row.failed)
    yield from (seconds, age, passes, failed)


class MetricsView(APIView):
    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request):
        if not request.user.is_staff:
            raise PermissionDenied("Metrics are for operators.")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MarketCollector())
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
