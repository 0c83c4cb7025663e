"""Runs, step 3 of 3 for credits: ledger rows and usage records name runs, not jobs."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0004_runs_from_jobs'),
        ('machines', '0005_status_choices'),
    ]

    operations = [
        migrations.RemoveConstraint(model_name='usagerecord', name='usage_unique_key'),
        migrations.RemoveIndex(model_name='usagerecord', name='usage_unposted'),
        migrations.RemoveIndex(model_name='ledgerentry', name='credits_led_job_id_7c6eee_idx'),
        migrations.RemoveField(model_name='ledgerentry', name='job'),
        migrations.RemoveField(model_name='usagerecord', name='job'),
        migrations.AlterField(
            model_name='usagerecord',
            name='run',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage', to='credits.run'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(fields=['run', 'kind'], name='credits_led_run_id_d56beb_idx'),
        ),
        migrations.AddIndex(
            model_name='usagerecord',
            index=models.Index(condition=models.Q(('posted_key', '')), fields=['run', 'machine'], name='usage_unposted'),
        ),
        migrations.AddConstraint(
            model_name='usagerecord',
            constraint=models.UniqueConstraint(fields=('run', 'key'), name='usage_unique_key'),
        ),
    ]
