"""GET /api/metrics/: the market's state for Prometheus, for operators only."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dmarket.conftest import client_for
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted
from dmarket.machines.models import Machine

pytestmark = pytest.mark.django_db


def samples(response):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode())
            for s in family.samples}


def test_an_operator_reads_the_markets_state(make_user, alice, entry_file):
    root = make_user("root", staff=True)
    submitted(alice, entry_file, max_credits="1")
    running = submitted(alice, entry_file, max_credits="1")
    Job.objects.filter(pk=running.pk).update(status=Job.RUNNING)
    Machine.objects.create(user=alice, cores=1, memory_mb=512, address="192.0.2.1",
                           state=Machine.ONLINE)

    response = client_for(root).get("/api/metrics/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response)
    assert found[("dmarket_jobs", (("status", "QUEUED"),))] == 1
    assert found[("dmarket_jobs", (("status", "RUNNING"),))] == 1
    assert found[("dmarket_jobs", (("status", "FAILED"),))] == 0
    assert found[("dmarket_machines", (("state", "ONLINE"),))] == 1
    # Each user's signup grant and each job's hold.
    assert found[("dmarket_ledger_rows", (("kind", "grant"),))] == 2
    assert found[("dmarket_ledger_rows", (("kind", "hold"),))] == 2
    assert found[("dmarket_queue_wait_seconds", ())] >= 0


def test_a_user_is_refused(alice):
    response = client_for(alice).get("/api/metrics/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Metrics are for operators."}


def test_without_a_token_it_is_401(db):
    assert client_for().get("/api/metrics/").status_code == 401
