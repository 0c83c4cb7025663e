"""A job's money is its run's (credits 0003-0005)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0011_carriers_delete'),
    ]

    operations = [
        migrations.RemoveField(model_name='job', name='cost'),
        migrations.RemoveField(model_name='job', name='max_credits'),
        migrations.RemoveField(model_name='job', name='premium_rate'),
        migrations.RemoveField(model_name='job', name='price_per_core_hour'),
        migrations.RemoveField(model_name='job', name='price_per_gpu_hour'),
        migrations.AlterField(
            model_name='job',
            name='run',
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='job', to='credits.run'),
        ),
    ]
