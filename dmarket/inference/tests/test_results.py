"""GET /api/inference/{id}/results/ (paginated) and .../results/download/ (JSON lines)."""

import json

import pytest

from dmarket.conftest import client_for
from dmarket.inference.models import InferenceOutput

from .util import running

pytestmark = pytest.mark.django_db


def test_results_one_per_input_by_index_paginated_and_downloadable(alice, bob):
    ijob = running(alice)
    InferenceOutput.objects.bulk_create([
        InferenceOutput(job=ijob, index=i, name=f"synthetic:{i}", output=[i, 0.5])
        for i in (2, 0, 1)])
    body = client_for(alice).get(f"/api/inference/{ijob.pk}/results/",
                                 {"page_size": 2}).json()
    assert body["count"] == 3
    assert body["results"] == [{"index": 0, "name": "synthetic:0", "output": [0.0, 0.5]},
                               {"index": 1, "name": "synthetic:1", "output": [1.0, 0.5]}]
    response = client_for(alice).get(f"/api/inference/{ijob.pk}/results/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]
    assert client_for(bob).get(f"/api/inference/{ijob.pk}/results/").status_code == 404
    assert client_for(bob).get(
        f"/api/inference/{ijob.pk}/results/download/").status_code == 404
