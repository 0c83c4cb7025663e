"""Runs, step 2 of 3: every existing job gets a run with the job's own id, its money copied,
and the ledger rows, usage records and pinned inputs that named the job name its run.

An inference job's run is its carrier job's (the jobs.Job row that carried its money before
runs): its id, so its ledger keys ("hold:job:N", "charge:job:N:...") keep naming it, and the
carrier's stop request and settling move onto the inference job. The carriers themselves go
in jobs 0011, once nothing points at them. The run sequence moves past the copied ids, so that
new runs' keys ("hold:run:N") never meet old ones. Migrating back runs nothing here: the
jobs' money columns come back with their defaults, not their values.
"""

from django.db import migrations

CARRIERS = "SELECT job_id FROM inference_inferencejob"


def runs_from_jobs(apps, schema_editor):
    statements = [
        # One run per job, with its id.
        "INSERT INTO credits_run (id, user_id, label, max_credits, price_per_core_hour, "
        "price_per_gpu_hour, premium_rate, cost, created_at) "
        "SELECT id, user_id, 'job ' || id, max_credits, price_per_core_hour, "
        "price_per_gpu_hour, premium_rate, cost, created_at FROM jobs_job",
        "UPDATE credits_run SET label = 'inference job ' || (SELECT i.id FROM "
        "inference_inferencejob i WHERE i.job_id = credits_run.id) "
        f"WHERE id IN ({CARRIERS})",
        "UPDATE jobs_job SET run_id = id",
        "UPDATE credits_ledgerentry SET run_id = job_id WHERE job_id IS NOT NULL",
        "UPDATE credits_usagerecord SET run_id = job_id",
        "UPDATE files_jobinput SET run_id = job_id",
        # The carrier's name, stop request and settling, now the inference job's own.
        "UPDATE inference_inferencejob SET run_id = job_id, "
        "name = (SELECT j.name FROM jobs_job j WHERE j.id = inference_inferencejob.job_id), "
        "cancel_requested = (SELECT j.cancel_requested FROM jobs_job j "
        "WHERE j.id = inference_inferencejob.job_id), "
        "stop_status = (SELECT j.stop_status FROM jobs_job j "
        "WHERE j.id = inference_inferencejob.job_id), "
        "settled_at = (SELECT j.settled_at FROM jobs_job j "
        "WHERE j.id = inference_inferencejob.job_id)",
        # A stop asked for and not yet carried out: its reason, as the carrier held it.
        "UPDATE inference_inferencejob SET status_reason = (SELECT j.status_reason FROM "
        "jobs_job j WHERE j.id = inference_inferencejob.job_id) "
        "WHERE cancel_requested AND status = 'RUNNING'",
    ]
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
        if schema_editor.connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('credits_run', 'id'), "
                           "COALESCE(MAX(id), 0) + 1, false) FROM credits_run")
        # SQLite: an explicit id above the table's sequence moves it (AUTOINCREMENT).


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0003_runs'),
        ('files', '0003_jobinput_run'),
        ('inference', '0006_inference_run'),
        ('jobs', '0010_job_run'),
    ]

    operations = [
        migrations.RunPython(runs_from_jobs, migrations.RunPython.noop, elidable=False),
    ]
