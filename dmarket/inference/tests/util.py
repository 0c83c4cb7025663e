from datetime import timedelta

from django.utils import timezone

from dmarket.conftest import client_for
from dmarket.inference.lifecycle import inference_claim
from dmarket.inference.models import InferenceBatch, InferenceJob


def submit(user, **fields):
    body = {"model": "lenet", "data": "synthetic:100", "batch_size": 8, "max_credits": "5"}
    body.update(fields)
    response = client_for(user).post("/api/inference/", body, format="json")
    assert response.status_code == 201, response.json()
    return InferenceJob.objects.get(pk=response.json()["id"])


def running(user, **fields):
    ijob = submit(user, **fields)
    return inference_claim(ijob.pk)


def add_batch(ijob, first, size, ms, seconds_ago=1.0, machine=None, host="127.0.0.2",
              core_ms=None, executor="0"):
    finished = timezone.now() - timedelta(seconds=seconds_ago)
    return InferenceBatch.objects.create(
        job=ijob, first_index=first, size=size, processing_ms=ms,
        core_ms=core_ms if core_ms is not None else int(ms * 2), executor=executor, host=host,
        machine=machine, finished_at=finished, started_at=finished - timedelta(milliseconds=ms))
