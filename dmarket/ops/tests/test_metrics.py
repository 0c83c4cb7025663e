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


def test_daemon_passes_bill_lag_heartbeats_usage_and_inference_rates(make_user, alice, bob,
                                                                     entry_file, monkeypatch):
    import os
    import signal
    from datetime import timedelta

    from django.utils import timezone

    from dmarket.common.daemon import pass_record, run_loop
    from dmarket.credits.services import Usage, run_bill_usage
    from dmarket.inference.tests.util import add_batch, running

    root = make_user("root", staff=True)
    now = timezone.now()
    # A loop of one pass: the pass stops the loop as SIGTERM does. (The loop closes old
    # connections after each pass, as a daemon must: not the test's, in its transaction.)
    monkeypatch.setattr("dmarket.common.daemon.close_old_connections", lambda: None)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_loop(lambda: os.kill(os.getpid(), signal.SIGTERM), 0, "billing")
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    pass_record("monitor", 0.5, failed=True)
    pass_record("monitor", 0.25, failed=False)
    settled = submitted(alice, entry_file, max_credits="1")
    Job.objects.filter(pk=settled.pk).update(status=Job.SUCCEEDED,
                                             finished_at=now - timedelta(seconds=30),
                                             settled_at=now - timedelta(seconds=10))
    machine = Machine.objects.create(user=bob, cores=1, memory_mb=512, address="192.0.2.1",
                                     state=Machine.ONLINE, last_heartbeat=now)
    Machine.objects.create(user=bob, cores=1, memory_mb=512, address="192.0.2.2",
                           state=Machine.ONLINE, last_heartbeat=now - timedelta(minutes=5))
    metered = submitted(alice, entry_file, max_credits="1")
    run_bill_usage(metered.run, [Usage("app:1", machine, 1000)], final=False)
    ijob = running(alice)
    ijob.started_at = now - timedelta(seconds=30)
    ijob.save(update_fields=["started_at"])
    add_batch(ijob, 0, 20, 1.0, seconds_ago=2)

    found = samples(client_for(root).get("/api/metrics/"))

    assert found[("dmarket_daemon_passes_total", (("daemon", "billing"),))] == 1
    assert found[("dmarket_daemon_failed_passes_total", (("daemon", "billing"),))] == 0
    assert found[("dmarket_daemon_passes_total", (("daemon", "monitor"),))] == 2
    assert found[("dmarket_daemon_failed_passes_total", (("daemon", "monitor"),))] == 1
    assert found[("dmarket_daemon_pass_seconds", (("daemon", "monitor"),))] == 0.25
    assert 0 <= found[("dmarket_daemon_pass_age_seconds", (("daemon", "billing"),))] < 60
    assert found[("dmarket_bill_lag_seconds", ())] == pytest.approx(20)
    assert found[("dmarket_bill_lag_max_seconds", ())] == pytest.approx(20)
    assert found[("dmarket_heartbeats_last_minute", ())] == 1
    assert found[("dmarket_usage_unposted", ())] == 1
    assert found[("dmarket_inference_rate", (("job", str(ijob.pk)),))] == pytest.approx(2.0)
