"""Jobs not yet settled when GPUs came get the GPU-hour price: their drivers could ask Spark for
GPUs once machines offer them, and what their executors hold is billed at that price (0
would make them free). Settled jobs keep what they were billed."""

from decimal import Decimal

from django.conf import settings
from django.db import migrations


def gpu_price(apps, schema_editor):
    prices = settings.DMARKET_PRICES
    Job = apps.get_model("jobs", "Job")
    for machine_type in Job.objects.filter(settled_at__isnull=True).values_list(
            "machine_type", flat=True).distinct():
        accelerator = machine_type if machine_type not in ("cpu", "core") else "gpu"
        price = Decimal(prices.get(accelerator, prices.get("gpu", 0)))
        Job.objects.filter(settled_at__isnull=True, machine_type=machine_type).update(
            price_per_gpu_hour=price)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0006_job_gpus")]
    operations = [migrations.RunPython(gpu_price, migrations.RunPython.noop)]
