"""GET /api/jobs/{id}/executors/ and GET /api/jobs/{id}/executors/{executor}/log/ on a real
cluster: where each executor ran, for how long, and its logs from the worker that ran it."""

from decimal import Decimal

import pytest

from dmarket.conftest import client_for

from .util import drive, history_core_ms, settled, share_workers, submit

pytestmark = pytest.mark.django_db(transaction=True)


def test_executors_and_their_logs(cluster, make_user):
    machines = share_workers(cluster, make_user)
    alice, bob = make_user("alice"), make_user("bob")
    client = client_for(alice)
    job = submit(alice, app_params=["--seconds", "1", "--tasks", "2"])
    assert client.get(f"/api/jobs/{job.pk}/executors/").json() == []

    job = drive(job, settled)

    response = client.get(f"/api/jobs/{job.pk}/executors/")
    assert response.status_code == 200
    executors = sorted(response.json(), key=lambda e: e["host"])
    core_ms = history_core_ms(job)
    assert [(e["host"], e["machine"], e["cores"]) for e in executors] == [
        ("127.0.0.2", machines["127.0.0.2"].pk, 1), ("127.0.0.3", machines["127.0.0.3"].pk, 1)]
    for e in executors:
        assert Decimal(e["core_seconds"]) == Decimal(core_ms[e["id"]]) / 1000
        assert e["logs"] == {
            "stderr": f"/api/jobs/{job.pk}/executors/{e['id']}/log/?type=stderr",
            "stdout": f"/api/jobs/{job.pk}/executors/{e['id']}/log/?type=stdout"}

    first = executors[0]["id"]
    log = client.get(f"/api/jobs/{job.pk}/executors/{first}/log/?type=stderr&size=200")
    assert log.status_code == 200
    body = log.json()
    assert body["text"].startswith("Spark Executor Command")
    assert (body["offset"], body["next"]) == (0, 200) and body["length"] > 200
    rest = client.get(f"/api/jobs/{job.pk}/executors/{first}/log/?type=stderr&from=200").json()
    assert rest["offset"] == 200 and rest["next"] == body["length"]

    assert client.get(f"/api/jobs/{job.pk}/executors/99/log/").json() == {
        "detail": f"Job {job.pk} has no executor '99'."}
    bad = client.get(f"/api/jobs/{job.pk}/executors/{first}/log/?type=syslog")
    assert (bad.status_code, bad.json()["errors"]) == (400, {"type": ["Use stdout or stderr."]})
    assert client_for(bob).get(f"/api/jobs/{job.pk}/executors/").status_code == 404
    assert client_for().get(f"/api/jobs/{job.pk}/executors/").status_code == 401
