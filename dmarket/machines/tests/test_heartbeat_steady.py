"""The steady heartbeat's short way (dmarket.machines.middleware.SteadyHeartbeatMiddleware):
one statement that is also the token's check (and once a minute a second, recording the
token's use), answered as the full view answers. Every request here comes after a beat that
made its token's use fresh; whatever the short way must not take goes on to the full view."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dmarket.accounts.models import ApiToken
from dmarket.common.gunicorn_logging import STEADY
from dmarket.conftest import client_for, machine_client
from dmarket.machines.models import Machine

from .test_machine_heartbeat import history, make_machine, reply, snapshot, url

pytestmark = pytest.mark.django_db

ALIVE = {"worker_state": "ALIVE", "worker_id": "worker-1", "python": "3.11",
         "platform": "linux-x86_64"}


@pytest.fixture(autouse=True)
def agent_settings(settings):
    settings.DMARKET_HEARTBEAT_INTERVAL = 7
    settings.DMARKET_HEARTBEAT_TIMEOUT = 21


@pytest.fixture
def beating(alice):
    """An ONLINE machine of alice's and its agent, which has just beaten (the full view)."""
    machine = make_machine(alice)
    agent = machine_client(machine)
    response = agent.post(url(machine), ALIVE, format="json")
    assert response.status_code == 200
    machine.refresh_from_db()
    return machine, agent, response


def test_a_steady_beat_is_one_statement_and_answers_as_the_full_view(
        beating, django_assert_num_queries):
    machine, agent, full = beating
    before = machine.last_heartbeat

    with django_assert_num_queries(1) as queries:
        response = agent.post(url(machine), ALIVE, format="json")

    assert queries.captured_queries[0]["sql"].startswith('UPDATE "machines_machine" AS m')
    assert response.status_code == 200
    assert response.content == full.content
    headers = {name: value for name, value in response.headers.items() if name != "X-Request-ID"}
    assert headers == {name: value for name, value in full.headers.items()
                       if name != "X-Request-ID"}
    assert headers["Content-Type"] == "application/json"
    assert response.json() == reply("ONLINE")
    machine.refresh_from_db()
    assert machine.last_heartbeat > before
    assert (machine.state, machine.heartbeat_timeout) == (Machine.ONLINE, 21)
    assert history(machine) == [("ONLINE", "heartbeat")]
    # The access log leaves the short way's answers out, not the full view's.
    assert response.wsgi_request.META.get(STEADY) is True
    assert STEADY not in full.wsgi_request.META


def test_a_beat_that_leaves_fields_out_is_steady_too(beating, django_assert_num_queries):
    machine, agent, _ = beating

    with django_assert_num_queries(1):
        response = agent.post(url(machine), {}, format="json")
    assert response.json() == reply("ONLINE")
    machine.refresh_from_db()
    assert (machine.worker_id, machine.python) == ("worker-1", "3.11")


def test_the_timeout_told_is_the_one_recorded(beating, settings):
    machine, agent, _ = beating
    settings.DMARKET_HEARTBEAT_TIMEOUT = 45

    assert agent.post(url(machine), ALIVE, format="json").json()["heartbeat_timeout"] == 45
    machine.refresh_from_db()
    assert machine.heartbeat_timeout == 45


@pytest.mark.parametrize("whose", ["same owner", "another user"])
def test_a_fresh_machine_token_cannot_beat_for_another_machine(beating, bob, whose):
    machine, agent, _ = beating
    other = make_machine(machine.user if whose == "same owner" else bob,
                         address="192.0.2.11", state=Machine.ONLINE, **ALIVE)
    before = snapshot(other)

    response = agent.post(url(other), ALIVE, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"This token is machine {machine.pk}'s; it cannot act for another machine."}
    assert snapshot(other) == before


def test_an_unknown_key_is_401_and_writes_nothing(beating):
    machine, _, _ = beating
    before = snapshot(machine)
    stranger = client_for()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = stranger.post(url(machine), ALIVE, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert snapshot(machine) == before


def test_an_inactive_users_fresh_token_is_401_and_writes_nothing(beating):
    machine, agent, _ = beating
    get_user_model().objects.filter(pk=machine.user_id).update(is_active=False)
    before = snapshot(machine)

    response = agent.post(url(machine), ALIVE, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}
    assert snapshot(machine) == before


def test_a_removed_machine_with_a_token_left_is_401(beating):
    machine, agent, _ = beating
    Machine.objects.filter(pk=machine.pk).update(state=Machine.REMOVED)
    before = snapshot(machine)

    response = agent.post(url(machine), ALIVE, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert snapshot(machine) == before


@pytest.mark.parametrize("unused", [timedelta(minutes=1), timedelta(days=3), None])
def test_a_token_unused_for_a_minute_has_its_use_recorded_by_the_short_way(
        beating, unused, django_assert_num_queries):
    machine, agent, full = beating
    old = None if unused is None else timezone.now() - unused
    ApiToken.objects.filter(machine=machine).update(last_used_at=old)

    with django_assert_num_queries(2) as queries:  # the beat, then the token's use
        response = agent.post(url(machine), ALIVE, format="json")

    assert queries.captured_queries[0]["sql"].startswith('UPDATE "machines_machine" AS m')
    assert queries.captured_queries[1]["sql"].startswith('UPDATE "accounts_apitoken"')
    assert response.content == full.content
    recorded = ApiToken.objects.get(machine=machine).last_used_at
    assert old is None or recorded > old
    assert STEADY not in response.wsgi_request.META  # in the access log, once a minute
    # Within the minute, the beat alone, out of the access log.
    with django_assert_num_queries(1):
        response = agent.post(url(machine), ALIVE, format="json")
    assert response.wsgi_request.META.get(STEADY) is True
    assert ApiToken.objects.get(machine=machine).last_used_at == recorded


def test_an_inactive_users_token_has_no_use_recorded(beating, bob):
    machine, agent, _ = beating
    old = timezone.now() - timedelta(minutes=5)
    ApiToken.objects.filter(machine=machine).update(last_used_at=old)
    get_user_model().objects.filter(pk=machine.user_id).update(is_active=False)

    response = agent.post(url(machine), ALIVE, format="json")

    assert response.status_code == 401
    assert ApiToken.objects.get(machine=machine).last_used_at == old


def test_the_owners_own_token_goes_the_full_way(beating, alice, django_assert_num_queries):
    machine, _, _ = beating
    owner = client_for(alice)
    owner.post(url(machine), ALIVE, format="json")  # its use recorded

    # The short way's UPDATE, which matches nothing; then the token, the machine, the UPDATE.
    with django_assert_num_queries(4):
        response = owner.post(url(machine), ALIVE, format="json")
    assert response.json() == reply("ONLINE")


@pytest.mark.parametrize("change, state, reason", [
    ({"worker_id": "worker-2"}, "ONLINE", None),
    ({"python": "3.12"}, "ONLINE", None),
    ({"worker_state": "DEAD"}, "OFFLINE", "its worker is DEAD"),
])
def test_a_beat_that_changes_anything_goes_the_full_way(beating, change, state, reason):
    machine, agent, _ = beating

    response = agent.post(url(machine), {**ALIVE, **change}, format="json")

    assert response.status_code == 200 and response.json()["state"] == state
    machine.refresh_from_db()
    assert machine.state == state
    assert all(getattr(machine, name) == value for name, value in change.items())
    assert history(machine) == ([(state, reason)] if reason else []) + [("ONLINE", "heartbeat")]


@pytest.mark.parametrize("fields", [{"share_until": "past"}, {"sharing_window": "window"}])
def test_a_machine_outside_its_sharing_goes_the_full_way_and_pauses(beating, fields):
    machine, agent, _ = beating
    now = timezone.now()
    if "share_until" in fields:
        update = {"share_until": now - timedelta(minutes=1)}
    else:
        update = {"sharing_window": (f"{(now + timedelta(hours=1)):%H:%M}-"
                                     f"{(now + timedelta(hours=2)):%H:%M}")}
    Machine.objects.filter(pk=machine.pk).update(**update)

    response = agent.post(url(machine), ALIVE, format="json")

    assert response.json()["state"] == "PAUSED"
    assert history(machine)[0][0] == "PAUSED"


def test_an_offline_machine_goes_the_full_way_and_comes_back(beating):
    machine, agent, _ = beating
    Machine.objects.filter(pk=machine.pk).update(state=Machine.OFFLINE)

    assert agent.post(url(machine), ALIVE, format="json").json()["state"] == "ONLINE"
    assert history(machine)[0] == ("ONLINE", "heartbeat")


@pytest.mark.parametrize("body, errors", [
    ({**ALIVE, "worker_id": "w\x00"}, {"worker_id": ["Null characters are not allowed."]}),
    ({**ALIVE, "cores": "64"}, {"cores": ["Unknown field."]}),
    ([], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
])
def test_a_body_the_short_way_does_not_take_is_the_full_views_to_judge(beating, body, errors):
    machine, agent, _ = beating
    before = snapshot(machine)

    response = agent.post(url(machine), body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == errors
    assert snapshot(machine) == before


def test_a_number_is_a_string_to_the_full_view(beating):
    machine, agent, _ = beating

    response = agent.post(url(machine), {**ALIVE, "worker_id": 7}, format="json")

    assert response.status_code == 200
    machine.refresh_from_db()
    assert machine.worker_id == "7"


def test_a_body_that_is_not_json_is_400(beating):
    machine, agent, _ = beating

    response = agent.post(url(machine), b"{not json", content_type="application/json")

    assert response.status_code == 400


def test_a_token_of_this_machine_but_another_users_is_the_full_views_to_refuse(
        beating, bob):
    """A token row naming alice's machine but bob as its user (no route makes one)."""
    machine, _, _ = beating
    _, key = ApiToken.issue(bob, name="machine", machine=machine)
    forged = client_for()
    forged.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert forged.post(url(machine), ALIVE, format="json").status_code == 404  # its use fresh
    before = snapshot(machine)

    response = forged.post(url(machine), ALIVE, format="json")

    assert response.status_code == 404
    assert snapshot(machine) == before


def test_a_worker_that_stays_dead_takes_the_machine_offline(beating):
    """Its stored worker_state already says DEAD (written meanwhile): the beat changes
    nothing it sends, yet the machine must not stay ONLINE."""
    machine, agent, _ = beating
    Machine.objects.filter(pk=machine.pk).update(worker_state="DEAD")

    response = agent.post(url(machine), {**ALIVE, "worker_state": "DEAD"}, format="json")

    assert response.json()["state"] == "OFFLINE"


@pytest.mark.parametrize("path, request_headers, status", [
    ("{url}%0A", {}, 404),  # Django's routes end at the end, not before a final newline
    ("{url}?format=api", {}, 404),
    ("{url}", {"HTTP_ACCEPT": "text/html"}, 406),
    ("{url}", {"HTTP_HOST": "evil.example"}, 400),
])
def test_a_request_the_full_view_would_refuse_is_refused(beating, path, request_headers,
                                                         status):
    machine, agent, _ = beating
    before = snapshot(machine)
    response = agent.generic("POST", path.format(url=url(machine)), b"{}",
                             content_type="application/json", **request_headers)

    assert response.status_code == status
    assert snapshot(machine) == before


def test_a_large_body_is_read_by_the_full_view_after_its_authentication(beating):
    machine, _, _ = beating
    stranger = client_for()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = stranger.post(url(machine), {"worker_id": "w" * 5000}, format="json")

    assert response.status_code == 401


def test_a_body_in_another_charset_is_read_by_the_full_view(beating,
                                                              django_assert_num_queries):
    machine, agent, _ = beating

    with django_assert_num_queries(2):  # the token, the UPDATE: not the short way's
        response = agent.generic("POST", url(machine), "{}".encode("utf-16"),
                                 content_type="application/json; charset=utf-16")

    assert response.status_code == 200


def synchronous_commit():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("use_due", [False, True])
def test_a_steady_beat_alone_does_not_wait_for_the_disk_and_nothing_after_it_is_spared(
        beating, use_due):
    """Outside any transaction (as the server runs it), the beat's own commit does not wait
    for its WAL: its statement turns synchronous_commit off for its own transaction (seen here
    by opening that transaction around it), and the connection's next write (a ledger row, say)
    waits for the disk as it did before."""
    from django.db import connection

    machine, agent, _ = beating
    if use_due:  # the token's use recorded too, by a second statement: nor is that waited for
        ApiToken.objects.filter(machine=machine).update(last_used_at=None)
    before = synchronous_commit()
    seen = []

    def inside_a_transaction(execute, sql, params, many, context):
        with context["connection"].connection.cursor() as raw:
            raw.execute("BEGIN")
            try:
                return execute(sql, params, many, context)
            finally:
                raw.execute("SHOW synchronous_commit")
                seen.append((sql, raw.fetchone()[0]))
                raw.execute("COMMIT")

    with connection.execute_wrapper(inside_a_transaction):
        assert agent.post(url(machine), ALIVE, format="json").status_code == 200

    assert [sql.split(" AS ")[0] for sql, _ in seen] == (
        ['UPDATE "machines_machine"', 'UPDATE "accounts_apitoken"'] if use_due
        else ['UPDATE "machines_machine"'])
    assert {setting for _, setting in seen} == {"off"}
    assert synchronous_commit() == before != "off"
    machine.refresh_from_db()
    assert machine.state == Machine.ONLINE


def test_a_steady_beat_inside_a_transaction_leaves_its_commit_alone(beating):
    """In a caller's transaction (a test's, here) the statement would make the caller's other
    writes commit without waiting too: it does not ask then."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    machine, agent, _ = beating
    before = synchronous_commit()
    with CaptureQueriesContext(connection) as queries:
        assert agent.post(url(machine), ALIVE, format="json").status_code == 200

    assert len(queries) == 1 and "synchronous_commit" not in queries.captured_queries[0]["sql"]
    assert synchronous_commit() == before


def test_a_steady_beats_statement_is_prepared_once_per_connection_whatever_the_fields_order(
        beating):
    from django.db import connection

    machine, agent, _ = beating
    for body in (ALIVE, dict(reversed(ALIVE.items())), ALIVE):
        assert agent.post(url(machine), body, format="json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements "
                       "WHERE statement LIKE 'UPDATE \"machines_machine\" AS m%%'")
        assert len(cursor.fetchall()) == 1
