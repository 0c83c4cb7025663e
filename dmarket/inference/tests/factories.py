"""Inference jobs for tests, made as a submit makes them (a run that holds the money) without
the API."""

from dmarket.credits.models import Run
from dmarket.inference.models import InferenceJob


def make_inference_job(**fields):
    """InferenceJob.objects.create(**fields) with a new run of its user's (max_credits goes to
    the run). Nothing is held."""
    run = Run.objects.create(user=fields["user"], max_credits=fields.pop("max_credits", 0))
    ijob = InferenceJob.objects.create(run=run, **fields)
    run.label = f"inference job {ijob.pk}"
    run.save(update_fields=["label"])
    return ijob
