"""GET /api/inference/{id}/stats/ and /api/inference/rates/: from the recorded batches."""

import pytest
from django.utils import timezone

from dmarket.conftest import client_for
from dmarket.inference.models import InferenceJob
from dmarket.inference.services import inference_finish
from dmarket.machines.models import Machine

from .util import add_batch, running, submit

pytestmark = pytest.mark.django_db


def test_query_times_are_their_batches_times_counted_per_query(alice, bob):
    machine = Machine.objects.create(user=bob, cores=1, memory_mb=1, address="127.0.0.2")
    ijob = running(alice)
    InferenceJob.objects.filter(pk=ijob.pk).update(
        started_at=timezone.now() - timezone.timedelta(seconds=20))
    add_batch(ijob, 0, 3, 10.0, seconds_ago=15)          # 3 queries of 10 ms
    add_batch(ijob, 3, 1, 40.0, seconds_ago=5, machine=machine)  # 1 query of 40 ms
    body = client_for(alice).get(f"/api/inference/{ijob.pk}/stats/").json()
    assert body["count"] == 4
    assert body["mean_ms"] == pytest.approx(17.5)
    assert body["std_ms"] == pytest.approx((3 * 7.5 ** 2 + 22.5 ** 2) ** 0.5 / 2)
    assert (body["p25_ms"], body["p50_ms"], body["p75_ms"], body["p99_ms"]) == (
        10.0, 10.0, 10.0, 40.0)
    # Only the batch of the last 10 s counts in the 10 s rate.
    assert body["rate_10s"] == pytest.approx(0.1, rel=0.02)
    assert body["rate_total"] == pytest.approx(4 / 20, rel=0.05)
    assert body["machines"] == [{"host": "127.0.0.2", "machine": machine.pk}]
    assert body["core_ms_per_query"] == pytest.approx((20 + 80) / 4)


def test_stats_are_kept_after_the_job_ends(alice):
    ijob = running(alice)
    InferenceJob.objects.filter(pk=ijob.pk).update(
        started_at=timezone.now() - timezone.timedelta(seconds=5))
    add_batch(ijob, 0, 8, 5.0, seconds_ago=2)
    inference_finish(ijob, InferenceJob.SUCCEEDED, "done")
    body = client_for(alice).get(f"/api/inference/{ijob.pk}/stats/").json()
    assert body["status"] == "SUCCEEDED" and body["count"] == 8 and body["p99_ms"] == 5.0
    assert body["rate_10s"] > 0


def test_a_job_without_batches_has_empty_stats(alice, bob):
    ijob = submit(alice)
    body = client_for(alice).get(f"/api/inference/{ijob.pk}/stats/").json()
    assert body["count"] == 0 and body["mean_ms"] is None and body["rate_10s"] == 0.0
    assert body["machines"] == []
    assert client_for(bob).get(f"/api/inference/{ijob.pk}/stats/").status_code == 404


def test_rates_compare_the_running_jobs(alice):
    fast, slow = running(alice), running(alice)
    InferenceJob.objects.update(started_at=timezone.now() - timezone.timedelta(seconds=30))
    add_batch(fast, 0, 22, 1.0, seconds_ago=2)
    add_batch(slow, 0, 20, 9.0, seconds_ago=2)
    body = client_for(alice).get("/api/inference/rates/").json()
    assert [j["job"] for j in body["jobs"]] == [fast.pk, slow.pk]
    assert [j["count"] for j in body["jobs"]] == [22, 20]
    assert body["max_over_min"] == pytest.approx(1.1)


def test_rates_of_a_single_job_have_no_ratio(alice):
    running(alice)
    assert client_for(alice).get("/api/inference/rates/").json()["max_over_min"] is None
