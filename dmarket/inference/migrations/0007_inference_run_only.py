import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0004_runs_from_jobs'),
        ('inference', '0006_inference_run'),
    ]

    operations = [
        migrations.RemoveField(model_name='inferencejob', name='job'),
        migrations.AlterField(
            model_name='inferencejob',
            name='run',
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='inference', to='credits.run'),
        ),
    ]
