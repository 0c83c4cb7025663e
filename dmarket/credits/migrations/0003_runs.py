"""Runs: what a job of either kind is billed under. Step 1 of 3: the table and the nullable
foreign keys to it (0004 fills them from the jobs, 0005 drops the jobs' money)."""

import django.db.models.deletion
from decimal import Decimal

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0002_usage_records'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Run',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('label', models.CharField(max_length=100)),
                ('max_credits', models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=20)),
                ('price_per_core_hour', models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=20)),
                ('price_per_gpu_hour', models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=20)),
                ('premium_rate', models.DecimalField(decimal_places=4, default=1, max_digits=8)),
                ('cost', models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=20)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='runs', to=settings.AUTH_USER_MODEL)),
            ],
            options={'ordering': ['-id']},
        ),
        migrations.AddField(
            model_name='ledgerentry',
            name='run',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='ledger', to='credits.run'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='run',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='usage', to='credits.run'),
        ),
    ]
