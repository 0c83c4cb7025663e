"""POST /api/machines/{id}/heartbeat/: the owner's agent says the machine is alive."""

import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from dmarket.accounts.models import ApiToken
from dmarket.accounts.permissions import MACHINE_TOKEN_REFUSED
from dmarket.cluster import security
from dmarket.cluster.models import ClusterSecret
from dmarket.conftest import client_for, machine_client
from dmarket.machines.models import Machine, MachineStateChange
from dmarket.machines.services import (BEATING_KEY, heartbeat_timing, machine_heartbeat,
                                       machine_set_state)

NOT_FOUND = {"detail": "No Machine matches the given query."}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def agent_settings(settings):
    settings.DMARKET_HEARTBEAT_INTERVAL = 7
    settings.DMARKET_HEARTBEAT_TIMEOUT = 21


def url(machine_or_pk):
    pk = getattr(machine_or_pk, "pk", machine_or_pk)
    return f"/api/machines/{pk}/heartbeat/"


def make_machine(user, **fields):
    defaults = {"cores": 4, "memory_mb": 8192, "address": "192.0.2.10"}
    return Machine.objects.create(user=user, **{**defaults, **fields})


def reply(state):
    return {"state": state, "heartbeat_interval": 7, "heartbeat_timeout": 21,
            "spark_secret": security.cluster_secret(),
            "spark_conf": {"spark.authenticate": "true",
                           "spark.network.crypto.enabled": "true"}}


def history(machine):
    return list(MachineStateChange.objects.filter(machine=machine)
                .values_list("state", "reason"))


def window(start_offset, end_offset):
    """A daily sharing window, in UTC, relative to now."""
    now = timezone.now()
    start = (now + start_offset).strftime("%H:%M")
    end = (now + end_offset).strftime("%H:%M")
    return f"{start}-{end}"


def snapshot(machine):
    machine.refresh_from_db()
    return (machine.state, machine.last_heartbeat, machine.worker_id, machine.worker_state,
            history(machine))


def test_heartbeat_brings_the_machine_online(alice):
    machine = make_machine(alice)
    before = timezone.now()

    response = client_for(alice).post(url(machine), {}, format="json")

    assert response.status_code == 200
    assert response.json() == reply("ONLINE")
    machine.refresh_from_db()
    assert machine.state == Machine.ONLINE
    assert before <= machine.last_heartbeat <= timezone.now()
    assert history(machine) == [("ONLINE", "heartbeat")]


def test_heartbeat_without_a_body(alice):
    machine = make_machine(alice)

    response = client_for(alice).post(url(machine))

    assert response.status_code == 200
    assert response.json() == reply("ONLINE")


def test_heartbeat_records_the_workers_report(alice):
    machine = make_machine(alice)

    client_for(alice).post(url(machine), {"worker_id": "worker-20261122-192.0.2.10-7078",
                                          "worker_state": "ALIVE"}, format="json")
    # A later heartbeat that says nothing about the worker keeps what was reported.
    client_for(alice).post(url(machine), {}, format="json")

    machine.refresh_from_db()
    assert (machine.worker_id, machine.worker_state) == ("worker-20261122-192.0.2.10-7078",
                                                         "ALIVE")


def test_heartbeat_records_the_python_its_executors_run(alice):
    machine = make_machine(alice)

    response = client_for(alice).post(url(machine), {"python": "3.11",
                                                     "platform": "linux-x86_64"}, format="json")
    assert response.status_code == 200
    client_for(alice).post(url(machine), {}, format="json")

    machine.refresh_from_db()
    assert (machine.python, machine.platform) == ("3.11", "linux-x86_64")


@pytest.mark.parametrize("field, value", [("python", "3.11; rm -rf /"), ("python", "three"),
                                          ("platform", "linux x86_64"),
                                          ("platform", "a" * 65)])
def test_a_malformed_python_or_platform_is_a_400(alice, field, value):
    machine = make_machine(alice)

    response = client_for(alice).post(url(machine), {field: value}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    machine.refresh_from_db()
    assert (machine.python, machine.platform, machine.last_heartbeat) == ("", "", None)


def test_history_is_written_only_when_the_state_changes(alice):
    machine = make_machine(alice)
    client = client_for(alice)

    for _ in range(3):
        assert client.post(url(machine), {}, format="json").json() == reply("ONLINE")

    assert history(machine) == [("ONLINE", "heartbeat")]


def test_heartbeat_inside_the_sharing_window_is_online(alice):
    machine = make_machine(alice, sharing_window=window(timedelta(hours=-1), timedelta(hours=1)))

    response = client_for(alice).post(url(machine), {}, format="json")

    assert response.json() == reply("ONLINE")


def test_heartbeat_outside_the_sharing_window_is_paused(alice):
    machine = make_machine(alice, sharing_window=window(timedelta(hours=2), timedelta(hours=3)))

    response = client_for(alice).post(url(machine), {}, format="json")

    assert response.status_code == 200
    assert response.json() == reply("PAUSED")
    machine.refresh_from_db()
    assert machine.state == Machine.PAUSED
    assert machine.last_heartbeat is not None
    assert history(machine) == [("PAUSED", "outside its sharing window")]


def test_heartbeat_after_share_until_is_paused(alice):
    machine = make_machine(alice, share_until=timezone.now() + timedelta(days=1))
    client = client_for(alice)
    assert client.post(url(machine), {}, format="json").json() == reply("ONLINE")
    # Time passes: the API refuses a share_until in the past, so set it in the database.
    Machine.objects.filter(pk=machine.pk).update(share_until=timezone.now() - timedelta(seconds=1))

    response = client.post(url(machine), {}, format="json")

    assert response.json() == reply("PAUSED")
    assert history(machine) == [("PAUSED", "outside its sharing window"), ("ONLINE", "heartbeat")]


def test_paused_machine_comes_back_online_when_shared_again(alice):
    machine = make_machine(alice, state=Machine.PAUSED)

    response = client_for(alice).post(url(machine), {}, format="json")

    assert response.json() == reply("ONLINE")
    assert history(machine) == [("ONLINE", "heartbeat")]


def test_heartbeat_after_removal_is_409(alice):
    machine = make_machine(alice)
    client_for(alice).delete(f"/api/machines/{machine.pk}/")
    before = snapshot(machine)

    response = client_for(alice).post(url(machine), {"worker_state": "ALIVE"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Machine {machine.pk} was removed; register it again to share it."}
    assert snapshot(machine) == before


def test_heartbeat_racing_a_removal_does_not_bring_the_machine_back(alice):
    # The view read the machine before a concurrent DELETE removed it: REMOVED is final.
    machine = make_machine(alice)
    stale = Machine.objects.get(pk=machine.pk)
    client_for(alice).delete(f"/api/machines/{machine.pk}/")

    machine_heartbeat(stale)

    machine.refresh_from_db()
    assert machine.state == Machine.REMOVED
    assert history(machine) == [("REMOVED", "removed by alice")]


def test_another_users_machine_is_404(alice, bob):
    machine = make_machine(alice)
    before = snapshot(machine)

    response = client_for(bob).post(url(machine), {}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert snapshot(machine) == before


def test_staff_cannot_heartbeat_another_users_machine(alice, staff):
    # Only the machine's own agent speaks for it, even to an operator.
    machine = make_machine(alice)
    before = snapshot(machine)

    response = client_for(staff).post(url(machine), {}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert snapshot(machine) == before


def test_staff_heartbeats_their_own_machine(staff):
    machine = make_machine(staff)

    response = client_for(staff).post(url(machine), {}, format="json")

    assert response.status_code == 200
    assert response.json() == reply("ONLINE")


# --- the machine's own token (its agent's) -----------------------------------------------------

def test_the_machine_token_heartbeats_its_machine(alice):
    machine = make_machine(alice)

    response = machine_client(machine).post(url(machine), {"worker_state": "ALIVE"},
                                            format="json")

    assert response.status_code == 200
    assert response.json() == reply("ONLINE")
    machine.refresh_from_db()
    assert (machine.state, machine.worker_state) == (Machine.ONLINE, "ALIVE")
    assert history(machine) == [("ONLINE", "heartbeat")]


def test_the_owners_token_still_heartbeats_beside_the_machine_token(alice):
    # Agents started before machine tokens send their owner's token: it keeps working.
    machine = make_machine(alice)
    machine_client(machine)

    response = client_for(alice).post(url(machine), {}, format="json")

    assert response.status_code == 200
    assert response.json() == reply("ONLINE")


@pytest.mark.parametrize("whose", ["same owner", "another user"])
def test_the_machine_token_on_another_machine_is_403(alice, bob, whose):
    machine = make_machine(alice)
    other = make_machine(alice if whose == "same owner" else bob, address="192.0.2.11")
    before = snapshot(other)

    response = machine_client(machine).post(url(other), {}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"This token is machine {machine.pk}'s; it cannot act for another machine."}
    assert snapshot(other) == before


def test_the_machine_token_on_a_missing_machine_is_403(alice):
    machine = make_machine(alice)

    response = machine_client(machine).post(url(999999), {}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"This token is machine {machine.pk}'s; it cannot act for another machine."}


def test_removing_the_machine_revokes_its_token(alice):
    machine = make_machine(alice)
    agent = machine_client(machine)
    assert agent.post(url(machine), {}, format="json").status_code == 200

    assert client_for(alice).delete(f"/api/machines/{machine.pk}/").status_code == 204
    response = agent.post(url(machine), {"worker_state": "ALIVE"}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert not ApiToken.objects.filter(machine=machine).exists()
    assert snapshot(machine)[0] == Machine.REMOVED


def test_a_removal_by_the_monitor_revokes_the_token_too(alice):
    # Every way to REMOVED (the monitor's cleanup, an operator) goes through machine_set_state.
    machine = make_machine(alice)
    agent = machine_client(machine)

    machine_set_state(machine, Machine.REMOVED, "offline for more than 60 s")
    response = agent.post(url(machine), {}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_a_token_left_on_a_removed_machine_is_401(alice):
    # A removal written past machine_set_state (in the database): its token is refused too.
    machine = make_machine(alice)
    agent = machine_client(machine)
    Machine.objects.filter(pk=machine.pk).update(state=Machine.REMOVED)

    response = agent.post(url(machine), {}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_the_machine_token_with_other_methods_is_403(alice, method):
    machine = make_machine(alice)

    response = getattr(machine_client(machine), method)(url(machine))

    assert response.status_code == 403
    assert response.json() == {"detail": MACHINE_TOKEN_REFUSED}


def test_anonymous_is_401(alice):
    machine = make_machine(alice)
    before = snapshot(machine)

    response = client_for().post(url(machine), {}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert snapshot(machine) == before


@pytest.mark.parametrize("pk", [999999, 10 ** 30])
def test_missing_machine_is_404(alice, pk):
    response = client_for(alice).post(url(pk), {}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("body, errors", [
    ({"worker_state": "A" * 33}, {"worker_state": ["Ensure this field has no more than 32 "
                                                   "characters."]}),
    ({"worker_id": "w" * 201}, {"worker_id": ["Ensure this field has no more than 200 "
                                              "characters."]}),
    ({"worker_state": None}, {"worker_state": ["This field may not be null."]}),
    ({"worker_id": ["w"]}, {"worker_id": ["Not a valid string."]}),
    ({"state": "ONLINE"}, {"state": ["Unknown field."]}),
    ({"last_heartbeat": "2030-01-01T00:00:00Z"}, {"last_heartbeat": ["Unknown field."]}),
    ([], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
])
def test_bad_input_is_400_and_changes_nothing(alice, body, errors):
    machine = make_machine(alice)
    before = snapshot(machine)

    response = client_for(alice).post(url(machine), body, format="json")

    detail = "; ".join(f"{field}: {m}" if field != "non_field_errors" else m
                       for field, messages in errors.items() for m in messages)
    assert response.status_code == 400
    assert response.json() == {"detail": detail, "errors": errors}
    assert snapshot(machine) == before


def test_non_json_body_is_400(alice):
    machine = make_machine(alice)

    response = client_for(alice).post(url(machine), "alive", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - Expecting value: line 1 column 1 (char 0)"}
    assert snapshot(machine)[0] == Machine.OFFLINE


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(alice, method):
    machine = make_machine(alice)

    response = getattr(client_for(alice), method)(url(machine))

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


# --- the cluster's secret -------------------------------------------------------------------

def test_heartbeat_answer_brings_a_rotated_secret_to_the_agent(alice):
    machine = make_machine(alice)
    agent = machine_client(machine)
    first = agent.post(url(machine), {"worker_state": "ALIVE"}, format="json").json()

    security.cluster_secret_rotate()
    second = agent.post(url(machine), {"worker_state": "ALIVE"}, format="json").json()

    assert re.fullmatch(r"[0-9a-f]{64}", first["spark_secret"])
    assert second["spark_secret"] == security.cluster_secret() != first["spark_secret"]


def test_the_secret_is_only_in_the_agents_answers(alice):
    machine = make_machine(alice)
    secret = security.cluster_secret()
    owner = client_for(alice)
    for path in (f"/api/machines/{machine.pk}/", "/api/machines/",
                 f"/api/machines/{machine.pk}/history/"):
        response = owner.get(path)
        assert response.status_code == 200
        assert secret not in response.content.decode()


def test_without_authentication_no_secret_is_handed_out(alice, settings):
    settings.DMARKET_SPARK_AUTHENTICATE = False
    machine = make_machine(alice)

    body = machine_client(machine).post(url(machine), {}, format="json").json()

    assert (body["spark_secret"], body["spark_conf"]) == ("", {})


def test_a_steady_heartbeat_is_one_update_and_a_change_a_transaction(
        alice, django_assert_num_queries, django_assert_max_num_queries):
    machine = make_machine(alice)
    with django_assert_max_num_queries(8):
        machine_heartbeat(machine, worker_state="ALIVE", worker_id="w-1")
    assert Machine.objects.get(pk=machine.pk).state == Machine.ONLINE

    with django_assert_num_queries(1):
        machine_heartbeat(machine, worker_state="ALIVE", worker_id="w-1")
    machine.refresh_from_db()
    assert (machine.state, machine.worker_id) == (Machine.ONLINE, "w-1")
    assert history(machine) == [("ONLINE", "heartbeat")]


def test_a_steady_heartbeat_request_is_one_statement(alice, django_assert_num_queries,
                                                     settings):
    """The conditional UPDATE that also checks the token (SteadyHeartbeatMiddleware,
    test_heartbeat_steady.py): the machine is not read, and the cluster's secret comes from
    the copy the process read a moment ago."""
    settings.DMARKET_SPARK_AUTHENTICATE = True
    machine = make_machine(alice)
    client = machine_client(machine)
    first = client.post(url(machine), {"worker_state": "ALIVE"}, format="json")
    assert first.status_code == 200
    with django_assert_num_queries(1) as queries:
        response = client.post(url(machine), {"worker_state": "ALIVE"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "ONLINE"
    assert response.json()["spark_secret"] == first.json()["spark_secret"]
    assert queries.captured_queries[0]["sql"].startswith('UPDATE "machines_machine" AS m')


def test_a_secret_rotated_by_another_process_reaches_the_agents_once_the_copy_expires(
        alice, monkeypatch):
    """Another process (manage.py cluster_secret --rotate) cannot clear this process's copy:
    the heartbeat answers the old secret for at most AGENT_SECRET_SECONDS, then the new."""
    monkeypatch.setattr(security, "AGENT_SECRET_SECONDS", 0.5)
    machine = make_machine(alice)
    agent = machine_client(machine)
    old = agent.post(url(machine), {"worker_state": "ALIVE"}, format="json").json()
    ClusterSecret.objects.filter(pk=1).update(value="b" * 64)  # as the other process does

    soon = agent.post(url(machine), {"worker_state": "ALIVE"}, format="json").json()
    time.sleep(0.6)
    later = agent.post(url(machine), {"worker_state": "ALIVE"}, format="json").json()

    assert soon["spark_secret"] == old["spark_secret"] != "b" * 64
    assert later["spark_secret"] == "b" * 64


# --- more machines than the server hears a second: longer intervals -------------------------

@pytest.mark.parametrize("beating, rate, timing", [
    (2000, 200, (10, 30)),      # 200 beats a second at 10 s: as configured
    (2001, 200, (11, 33)),      # one more: every interval and timeout a little longer
    (10_000, 200, (50, 150)),
    (10_000, 0, (10, 30)),      # 0: never stretched
    (0, 200, (10, 30)),
])
def test_the_interval_and_timeout_stretch_alike_past_the_heartbeat_rate(settings, beating,
                                                                        rate, timing):
    settings.DMARKET_HEARTBEAT_INTERVAL, settings.DMARKET_HEARTBEAT_TIMEOUT = 10, 30
    settings.DMARKET_MAX_HEARTBEATS_PER_SECOND = rate
    assert heartbeat_timing(beating) == timing


def test_past_the_rate_each_answer_asks_for_longer_intervals_and_the_machine_keeps_its_timeout(
        alice, settings):
    settings.DMARKET_HEARTBEAT_INTERVAL, settings.DMARKET_HEARTBEAT_TIMEOUT = 7, 21
    settings.DMARKET_MAX_HEARTBEATS_PER_SECOND = 2
    machines = [make_machine(alice) for _ in range(15)]   # 15 machines at 2 a second: 8 s
    Machine.objects.filter(pk=machines[0].pk).update(state=Machine.REMOVED)  # beats no more
    agent = machine_client(machines[1])

    answer = agent.post(url(machines[1]), {"worker_state": "ALIVE"}, format="json").json()
    registered = client_for(alice).post("/api/machines/", {
        "cores": 1, "memory_mb": 512, "address": "192.0.2.99"}, format="json").json()

    # 14 beating: 7 s would be 2 a second, the most; the cached count (14) answers both.
    assert (answer["heartbeat_interval"], answer["heartbeat_timeout"]) == (7, 21)
    assert (registered["agent"]["heartbeat_interval"],
            registered["agent"]["heartbeat_timeout"]) == (7, 21)
    cache.delete(BEATING_KEY)   # as this process's count expires (BEATING_SECONDS)
    answer = agent.post(url(machines[1]), {"worker_state": "ALIVE"}, format="json").json()
    assert (answer["heartbeat_interval"], answer["heartbeat_timeout"]) == (8, 24)
    assert Machine.objects.get(pk=machines[1].pk).heartbeat_timeout == 24


def test_the_machines_are_counted_once_a_while_not_on_every_beat(alice, settings,
                                                                 django_assert_num_queries):
    machine = make_machine(alice)
    agent = machine_client(machine)
    agent.post(url(machine), {"worker_state": "ALIVE"}, format="json")
    with django_assert_num_queries(1):   # the UPDATE that checks the token: no count
        agent.post(url(machine), {"worker_state": "ALIVE"}, format="json")
