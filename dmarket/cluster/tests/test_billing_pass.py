"""Billing's pass at scale (dmarket.cluster.billing.billing_tick): the history server is asked
about its jobs concurrently, at most DMARKET_BILLING_CONCURRENCY lookups at once, for at most
DMARKET_BILLING_DEADLINE seconds; a job whose lookup is not done by then waits for the next
pass while the others are billed. Against a fake history server (a real HTTP server on
127.0.0.1) whose answers can be made slow."""

import http.server
import json
import logging
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dmarket.cluster import billing
from dmarket.credits.models import LedgerEntry, UsageRecord
from dmarket.credits.tests.test_ledger import make_job, make_machine
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

pytestmark = pytest.mark.django_db

APP = "/api/v1/applications/"


def history_time(t):
    """A time as the history server writes it: '2026-11-22T08:25:30.398GMT'."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}GMT"


def ended_executor(executor_id, host, cores=1, hours=1, worker_ui=""):
    """An executor of `cores` that ran for `hours` and ended an hour ago, on `host`."""
    now = timezone.now()
    logs = {"stdout": f"http://{worker_ui}/logPage/?logType=stdout"} if worker_ui else {}
    return {"id": str(executor_id), "totalCores": cores, "hostPort": f"{host}:40000",
            "addTime": history_time(now - timedelta(hours=1 + hours)),
            "removeTime": history_time(now - timedelta(hours=1)), "executorLogs": logs}


class FakeHistory:
    """A fake Spark history server and master UI: a real HTTP server on 127.0.0.1 answering
    /api/v1/applications/ID, /api/v1/applications/ID/allexecutors (executors(ID)) and the
    master's /json/ (workers). Each answer waits `delay` seconds, or slow[ID] for that
    application's; it counts the requests in flight at once (max_in_flight)."""

    def __init__(self, executors, workers=(), delay=0.0):
        self.executors = executors
        self.workers = list(workers)
        self.delay = delay
        self.slow = {}
        self.completed = set()
        self.asked = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with fake.lock:
                    fake.asked.append(self.path)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    status, body = fake.answer(self.path)
                finally:
                    # Out of flight before the answer leaves: its client may send the next
                    # request as soon as it has it, before this thread runs again.
                    with fake.lock:
                        fake.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (ConnectionError, OSError):
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path):
        if path.rstrip("/") == "/json":
            return 200, json.dumps({"workers": self.workers}).encode()
        if not path.startswith(APP):
            return 404, b"{}"
        app_id, _, what = path[len(APP):].partition("/")
        time.sleep(self.slow.get(app_id, self.delay))
        if what == "allexecutors":
            return 200, json.dumps(self.executors(app_id)).encode()
        attempt = {"completed": app_id in self.completed}
        if attempt["completed"]:
            attempt["endTime"] = history_time(timezone.now() - timedelta(minutes=30))
        return 200, json.dumps({"id": app_id, "name": app_id, "attempts": [attempt]}).encode()

    def start(self):
        # Polled every 10 ms: shutdown() waits for a poll (0.5 s by default).
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def app_requests(self):
        return [path for path in self.asked if path.startswith(APP)]


@pytest.fixture
def history(settings):
    """The fake history server (and master UI), every application with one executor of one
    core that ran for an hour on 192.0.2.10; billing's charges posted at once."""
    fake = FakeHistory(lambda app_id: [ended_executor(1, "192.0.2.10")]).start()
    settings.DMARKET_HISTORY_URL = fake.url
    settings.DMARKET_SPARK_MASTER_UI = fake.url
    settings.DMARKET_BILLING_INTERVAL = 0
    settings.DMARKET_BILLING_CONCURRENCY = 8
    settings.DMARKET_BILLING_DEADLINE = 10
    yield fake
    fake.stop()


def running(user, app_id):
    job = make_job(user, max_credits="10")
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, spark_app_id=app_id)
    job.refresh_from_db()
    return job


def finished(user, app_id):
    job = make_job(user, max_credits="10")
    Job.objects.filter(pk=job.pk).update(status=Job.SUCCEEDED, spark_app_id=app_id,
                                         finished_at=timezone.now() - timedelta(minutes=30))
    job.refresh_from_db()
    return job


def billed(job):
    """(usage records metered, credits charged) of the job."""
    job.refresh_from_db()
    charged = sum((-e.amount for e in LedgerEntry.objects.filter(run=job.run,
                                                                 kind=LedgerEntry.CHARGE)),
                  Decimal(0))
    return UsageRecord.objects.filter(run=job.run).count(), charged


def timed_tick():
    start = time.monotonic()
    settled = billing.billing_tick()
    return settled, time.monotonic() - start


def test_a_slow_application_does_not_hold_the_pass_and_is_billed_on_the_next(
        alice, bob, history, settings, caplog):
    settings.DMARKET_BILLING_DEADLINE = 1
    make_machine(bob)
    one, two, slow = running(alice, "app-1"), running(alice, "app-2"), running(alice, "app-3")
    # Longer than the deadline, and than a request's own timeout (spark.HTTP_TIMEOUT).
    history.slow["app-3"] = 4

    with caplog.at_level(logging.WARNING, logger="dmarket.cluster.billing"):
        assert timed_tick()[1] < 2
    assert billed(one) == billed(two) == (1, Decimal("1"))
    assert billed(slow) == (0, Decimal(0))
    assert [r.getMessage() for r in caplog.records if "history lookup" in r.getMessage()] == [
        "billing: 1 of 3 history lookup(s) not done within 1 s; their jobs wait for the next "
        "pass"]

    del history.slow["app-3"]
    caplog.clear()
    billing.billing_tick()
    assert billed(slow) == (1, Decimal("1"))
    # Metered once: the others' executors are not billed again.
    assert billed(one) == billed(two) == (1, Decimal("1"))
    assert not [r for r in caplog.records if "history lookup" in r.getMessage()]


def test_a_finished_job_whose_lookup_is_late_is_settled_on_the_next_pass(
        alice, bob, history, settings):
    settings.DMARKET_BILLING_DEADLINE = 1
    make_machine(bob)
    done, late = finished(alice, "app-7"), finished(alice, "app-8")
    history.completed |= {"app-7", "app-8"}
    history.slow["app-8"] = 4

    settled, seconds = timed_tick()
    assert (settled, seconds < 2) == (1, True)
    done.refresh_from_db()
    late.refresh_from_db()
    assert (done.settled_at is not None, late.settled_at) == (True, None)
    assert billed(done) == (1, Decimal("1"))

    del history.slow["app-8"]
    assert billing.billing_tick() == 1
    late.refresh_from_db()
    assert late.settled_at is not None
    assert billed(late) == (1, Decimal("1"))


def test_lookups_run_concurrently(alice, bob, history):
    make_machine(bob)
    jobs = [running(alice, f"app-{i}") for i in range(8)]
    history.delay = 0.25  # each lookup: two requests, 0.5 s; one after the other, 4 s

    assert timed_tick()[1] < 2.5
    assert [billed(job) for job in jobs] == [(1, Decimal("1"))] * 8
    assert len(history.app_requests()) == 16
    assert history.max_in_flight > 1


@pytest.mark.parametrize("concurrency", [1, 3])
def test_no_more_lookups_at_once_than_the_setting(alice, bob, history, settings, concurrency):
    settings.DMARKET_BILLING_CONCURRENCY = concurrency
    make_machine(bob)
    jobs = [running(alice, f"app-{i}") for i in range(9)]
    history.delay = 0.1

    billing.billing_tick()
    assert history.max_in_flight == concurrency
    assert [billed(job) for job in jobs] == [(1, Decimal("1"))] * 9


def test_jobs_of_one_application_are_looked_up_once(alice, bob, history):
    make_machine(bob)
    jobs = [running(alice, "app-1"), running(alice, "app-1")]

    billing.billing_tick()
    assert sorted(history.app_requests()) == [APP + "app-1", APP + "app-1/allexecutors"]
    assert [billed(job) for job in jobs] == [(1, Decimal("1"))] * 2


def test_a_lookup_that_raises_backs_off_its_job_only(alice, bob, history, monkeypatch):
    make_machine(bob)
    good, bad = running(alice, "app-1"), running(alice, "app-2")
    answer = history.answer
    monkeypatch.setattr(history, "answer", lambda path: (
        (200, b"not json") if "app-2" in path else answer(path)))

    billing.billing_tick()
    assert billed(good) == (1, Decimal("1"))
    assert billed(bad) == (0, Decimal(0))
    assert bad.pk in billing._guards["bill"].backed_off()
    assert good.pk not in billing._guards["bill"].backed_off()


def test_a_job_billed_alone_takes_the_history_given_or_asks_for_it(alice, bob, history):
    make_machine(bob)
    job = running(alice, "app-1")

    given = ({"attempts": [{"completed": False}]}, [ended_executor(1, "192.0.2.10", cores=2)])
    billing.job_bill_running(job, [], history=given)
    assert history.asked == []
    assert billed(job) == (1, Decimal("2"))

    other = running(alice, "app-2")
    billing.job_bill_running(other, [])
    assert history.app_requests() == [APP + "app-2", APP + "app-2/allexecutors"]
    assert billed(other) == (1, Decimal("1"))


def test_a_pass_reads_the_machines_of_all_its_jobs_at_once_as_each_job_would(
        alice, bob, history):
    by_id = Machine.objects.create(user=bob, cores=2, memory_mb=1, address="10.9.9.9",
                                   worker_id="worker-a")
    by_address = Machine.objects.create(user=bob, cores=1, memory_mb=1, address="127.0.0.3")
    Machine.objects.create(user=bob, cores=1, memory_mb=1, address="127.0.0.3",
                           state=Machine.REMOVED)
    removed = Machine.objects.create(user=bob, cores=1, memory_mb=1, address="127.0.0.4",
                                     state=Machine.REMOVED)
    history.workers = [{"id": "worker-a", "webuiaddress": "http://127.0.0.2:8081"}]
    hosts = {"app-1": "127.0.0.2", "app-2": "127.0.0.3", "app-3": "127.0.0.4",
             "app-4": "127.0.0.5", "app-5": "127.0.0.2"}
    history.executors = lambda app_id: [
        {"id": "driver", "hostPort": "127.0.0.9:1"},
        ended_executor(1, hosts[app_id], worker_ui=f"{hosts[app_id]}:8081")]
    jobs = {app_id: running(alice, app_id) for app_id in hosts}

    with CaptureQueriesContext(connection) as queries:
        billing.billing_tick()

    # One query for the workers' machines, one for the hosts', whatever the jobs.
    wheres = [q["sql"].partition(" WHERE ")[2] for q in queries.captured_queries
              if 'FROM "machines_machine"' in q["sql"]]
    assert [w.split(" IN ")[0] for w in wheres if "worker_id" in w or "address" in w] == [
        '"machines_machine"."worker_id"', '"machines_machine"."address"']
    machine_of = {app_id: list(UsageRecord.objects.filter(run=job.run)
                               .values_list("machine_id", flat=True))
                  for app_id, job in jobs.items()}
    assert machine_of == {"app-1": [by_id.pk], "app-2": [by_address.pk],
                          "app-3": [removed.pk], "app-4": [], "app-5": [by_id.pk]}
    # As a job billed on its own finds them, a query or two each.
    resolve = billing.machine_resolver(history.workers)
    assert {app_id: [m.pk for m in [resolve(history.executors(app_id)[1])] if m]
            for app_id in hosts} == machine_of
