"""Migrations credits 0003-0005, jobs 0010-0012, files 0003-0004, inference 0006-0007: every
job's money moves to a run with the job's id, and an inference job's carrier job gives it its
run, name and stop request, then goes."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dmarket.conftest import ledger_problems

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("credits", "0002_usage_records"), ("jobs", "0009_status_choices"),
          ("files", "0002_results_stored"), ("inference", "0005_status_choices")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def post(apps, user, kind, key, amount, held, balance_after, held_after, job=None,
         machine=None):
    apps.get_model("credits", "LedgerEntry").objects.create(
        user=user, kind=kind, key=key, amount=Decimal(amount), held=Decimal(held),
        balance_after=Decimal(balance_after), held_after=Decimal(held_after), job=job,
        machine=machine)


def test_jobs_and_inference_carriers_become_runs_with_their_ids():
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Job = apps.get_model("jobs", "Job")
    user = User.objects.create(username="old")
    owner = User.objects.create(username="owner")
    machine = apps.get_model("machines", "Machine").objects.create(
        user=owner, cores=2, memory_mb=1024, address="127.0.0.9")
    job = Job.objects.create(user=user, name="train", entry_file="/a.py", status="RUNNING",
                             max_credits=Decimal("5"), cost=Decimal("1.5"),
                             price_per_core_hour=Decimal("2"),
                             price_per_gpu_hour=Decimal("7"), premium_rate=Decimal("1.25"))
    carrier = Job.objects.create(
        user=user, name="infer mnist", entry_file="(inference server)", status="STARTING",
        launcher="dmarket-inference-server", max_credits=Decimal("3"),
        cancel_requested=True, stop_status="FAILED", status_reason="credit cap reached")
    ijob = apps.get_model("inference", "InferenceJob").objects.create(
        user=user, job=carrier, model="builtin:mnist", data="synthetic:10", batch_size=4,
        status="RUNNING")
    apps.get_model("files", "JobInput").objects.create(job=carrier, uri="dmarket://d@1")
    apps.get_model("credits", "UsageRecord").objects.create(
        job=job, machine=machine, key="app-1:1", core_ms=2700000,
        posted_key=f"charge:job:{job.pk}:app-1:1")
    post(apps, user, "grant", "grant:old", "10", "0", "10", "0")
    post(apps, user, "hold", f"hold:job:{job.pk}", "0", "5", "10", "5", job=job)
    post(apps, user, "hold", f"hold:job:{carrier.pk}", "0", "3", "10", "8", job=carrier)
    post(apps, user, "charge", f"charge:job:{job.pk}:app-1:1", "-1.5", "-1.5", "8.5", "6.5",
         job=job, machine=machine)
    post(apps, owner, "earning", f"earning:job:{job.pk}:app-1:1", "1.5", "0", "1.5", "0",
         job=job, machine=machine)
    Account = apps.get_model("credits", "Account")
    Account.objects.create(user=user, balance=Decimal("8.5"), held=Decimal("6.5"),
                           spent=Decimal("1.5"))
    Account.objects.create(user=owner, balance=Decimal("1.5"), earned=Decimal("1.5"))
    try:
        migrate(leaves())
        from dmarket.credits.models import LedgerEntry, Run, UsageRecord
        from dmarket.credits.services import run_release
        from dmarket.files.models import JobInput
        from dmarket.inference.models import InferenceJob
        from dmarket.jobs.models import Job as NewJob

        run = Run.objects.get(pk=job.pk)
        assert (run.label, run.user_id, run.max_credits, run.cost, run.price_per_core_hour,
                run.price_per_gpu_hour, run.premium_rate) == (
            f"job {job.pk}", user.pk, Decimal("5"), Decimal("1.5"), Decimal("2"),
            Decimal("7"), Decimal("1.25"))
        assert NewJob.objects.get(pk=job.pk).run_id == job.pk
        assert sorted(LedgerEntry.objects.filter(run=run).values_list("kind", flat=True)) == [
            "charge", "earning", "hold"]
        assert UsageRecord.objects.get().run_id == job.pk

        migrated = InferenceJob.objects.get(pk=ijob.pk)
        assert (migrated.run_id, migrated.run.label, migrated.name, migrated.cancel_requested,
                migrated.stop_status, migrated.status_reason) == (
            carrier.pk, f"inference job {ijob.pk}", "infer mnist", True, "FAILED",
            "credit cap reached")
        assert LedgerEntry.objects.get(key=f"hold:job:{carrier.pk}").run_id == carrier.pk
        assert JobInput.objects.get().run_id == carrier.pk
        assert not NewJob.objects.filter(pk=carrier.pk).exists()

        # New runs never take an old job's id, and the old hold is released under the new
        # key: the ledger's invariants hold throughout.
        new = Run.objects.create(user_id=user.pk, label="new")
        assert new.pk > carrier.pk
        entry, created = run_release(run)
        assert (entry.key, entry.held, created) == (f"release:run:{job.pk}", Decimal("-3.5"),
                                                    True)
        assert ledger_problems() == []
    finally:
        migrate(leaves())
