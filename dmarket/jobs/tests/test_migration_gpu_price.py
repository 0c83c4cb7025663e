"""Migration 0007: jobs not settled when GPUs came get the GPU-hour price, settled ones keep
what they were billed."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("jobs", "0006_job_gpus")]
AFTER = [("jobs", "0007_unsettled_jobs_gpu_price")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_unsettled_jobs_get_the_gpu_price_and_settled_ones_keep_theirs(settings):
    settings.DMARKET_PRICES = {"core": Decimal("1"), "gpu": Decimal("4.5")}
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Job = apps.get_model("jobs", "Job")
    user = User.objects.create(username="old")
    queued = Job.objects.create(user=user, name="q", entry_file="/a.py")
    settled = Job.objects.create(user=user, name="s", entry_file="/a.py", status="SUCCEEDED",
                                 settled_at=timezone.now())
    try:
        apps = migrate(AFTER)
        Job = apps.get_model("jobs", "Job")
        assert Job.objects.get(pk=queued.pk).price_per_gpu_hour == Decimal("4.5")
        assert Job.objects.get(pk=settled.pk).price_per_gpu_hour == Decimal("0")
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

