from django.db import migrations
from django.db.models import Sum


def keyed_batches_to_usage(apps, schema_editor):
    """Batches given a usage key but not billed before metering (billing stopped between the
    two) become unposted usage records; the next bill posts them."""
    InferenceBatch = apps.get_model("inference", "InferenceBatch")
    UsageRecord = apps.get_model("credits", "UsageRecord")
    groups = (InferenceBatch.objects.exclude(usage_key="").filter(machine__isnull=False)
              .values("job__job_id", "usage_key", "machine_id")
              .annotate(core_ms=Sum("core_ms"), gpu_ms=Sum("gpu_ms")))
    UsageRecord.objects.bulk_create(
        [UsageRecord(job_id=g["job__job_id"], machine_id=g["machine_id"], key=g["usage_key"],
                     core_ms=g["core_ms"] or 0, gpu_ms=g["gpu_ms"] or 0) for g in groups],
        ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0003_batch_gpu_ms"),
        ("credits", "0002_usage_records"),
    ]

    operations = [
        migrations.RunPython(keyed_batches_to_usage, migrations.RunPython.noop),
    ]
