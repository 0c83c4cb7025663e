"""The jobs.Job rows that carried inference jobs' money before runs go, now that nothing points
at them (credits 0003-0005). A migration of its own: PostgreSQL alters no table with row
changes pending in the same transaction."""

from django.db import migrations

# The launcher name those rows had: no launcher ever ran under it.
CARRIER_LAUNCHER = "dmarket-inference-server"


def carriers_delete(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    Job.objects.filter(launcher=CARRIER_LAUNCHER).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('cluster', '0001_initial'),
        ('credits', '0005_runs_only'),
        ('files', '0004_jobinput_run_only'),
        ('inference', '0007_inference_run_only'),
        ('jobs', '0010_job_run'),
    ]

    operations = [
        migrations.RunPython(carriers_delete, migrations.RunPython.noop, elidable=False),
    ]
