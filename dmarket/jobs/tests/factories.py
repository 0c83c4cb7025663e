"""Jobs for tests, made as a submit makes them (a run that holds the money) without the API."""

from dmarket.credits.models import Run
from dmarket.jobs.models import Job

# A Job's fields that are its run's.
RUN_FIELDS = ("max_credits", "price_per_core_hour", "price_per_gpu_hour", "premium_rate",
              "cost")


def make_job(**fields):
    """Job.objects.create(**fields), the money fields (RUN_FIELDS) going to a new run of the
    job's user. Nothing is held: a test that needs the hold posts it (run_hold)."""
    money = {name: fields.pop(name) for name in RUN_FIELDS if name in fields}
    owner = {"user": fields["user"]} if "user" in fields else {"user_id": fields["user_id"]}
    run = Run.objects.create(**owner, **money)
    job = Job.objects.create(run=run, **fields)
    run.label = f"job {job.pk}"
    run.save(update_fields=["label"])
    return job
