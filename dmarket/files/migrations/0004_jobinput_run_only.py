import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0004_runs_from_jobs'),
        ('files', '0003_jobinput_run'),
    ]

    operations = [
        migrations.RemoveConstraint(model_name='jobinput', name='job_input_unique_uri'),
        migrations.RemoveField(model_name='jobinput', name='job'),
        migrations.AlterField(
            model_name='jobinput',
            name='run',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='inputs', to='credits.run'),
        ),
        migrations.AddConstraint(
            model_name='jobinput',
            constraint=models.UniqueConstraint(fields=('run', 'uri'), name='job_input_unique_uri'),
        ),
    ]
