import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0003_runs'),
        ('inference', '0005_status_choices'),
    ]

    operations = [
        migrations.AddField(
            model_name='inferencejob',
            name='run',
            field=models.OneToOneField(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='inference', to='credits.run'),
        ),
        migrations.AddField(
            model_name='inferencejob',
            name='name',
            field=models.CharField(default='', max_length=200),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='inferencejob',
            name='cancel_requested',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='inferencejob',
            name='stop_status',
            field=models.CharField(blank=True, choices=[('QUEUED', 'Queued'), ('RUNNING', 'Running'), ('SUCCEEDED', 'Succeeded'), ('FAILED', 'Failed'), ('CANCELLED', 'Cancelled')], max_length=10),
        ),
        migrations.AddField(
            model_name='inferencejob',
            name='settled_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
