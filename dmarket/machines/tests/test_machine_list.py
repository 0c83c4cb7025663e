"""GET and POST /api/machines/: a user's shared machines, and registering a new one."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.accounts.permissions import MACHINE_TOKEN_REFUSED
from dmarket.cluster import security
from dmarket.conftest import client_for, machine_client
from dmarket.machines.models import Machine, MachineStateChange
from dmarket.jobs.tests.factories import make_job

URL = "/api/machines/"
VALID = {"name": "desk", "cores": 8, "memory_mb": 16384, "machine_type": "cpu",
         "address": "node1.example.org"}
ADDRESS_MESSAGE = ("Enter this machine's IP address or host name, e.g. 192.0.2.10 or "
                   "node1.example.org.")
WINDOW_FORMAT = "expected HH:MM-HH:MM with 24-hour times, e.g. 09:00-18:00"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def agent_settings(settings):
    settings.DMARKET_SPARK_MASTER_URL = "spark://master.example.org:7077"
    settings.DMARKET_HEARTBEAT_INTERVAL = 7
    settings.DMARKET_HEARTBEAT_TIMEOUT = 21


def row_counts():
    return (Machine.objects.count(), MachineStateChange.objects.count(),
            ApiToken.objects.count())


def make_machine(user, **fields):
    defaults = {"cores": 4, "memory_mb": 8192, "address": "192.0.2.10"}
    return Machine.objects.create(user=user, **{**defaults, **fields})


def as_listed(machine):
    """What the API shows for a machine created with make_machine and never changed since."""
    machine.refresh_from_db()
    return {"id": machine.pk, "owner": machine.user.username, "name": machine.name,
            "cores": machine.cores, "memory_mb": machine.memory_mb,
            "machine_type": machine.machine_type, "gpus": machine.gpus,
            "address": machine.address,
            "sharing_window": machine.sharing_window, "share_until": None,
            "state": machine.state, "worker_id": "", "worker_state": "", "last_heartbeat": None,
            "cores_in_use": 0, "python": "", "platform": "",
            "earned": "0.000000",
            "created_at": machine.created_at.isoformat().replace("+00:00", "Z"),
            "removed_at": (machine.removed_at.isoformat().replace("+00:00", "Z")
                           if machine.removed_at else None)}


def page(*machines):
    return {"count": len(machines), "next": None, "previous": None,
            "results": [as_listed(m) for m in machines]}


def bad_request(field, message):
    return {"detail": f"{field}: {message}", "errors": {field: [message]}}


# --- POST: registering a machine ------------------------------------------------------------

def test_register_machine_returns_it_with_the_agents_settings(alice):
    response = client_for(alice).post(URL, VALID, format="json")

    assert response.status_code == 201
    machine = Machine.objects.get()
    body = response.json()
    assert body == {
        "id": machine.pk, "owner": "alice", "name": "desk", "cores": 8, "memory_mb": 16384,
        "machine_type": "cpu", "gpus": 0, "address": "node1.example.org",
        "sharing_window": "",
        "share_until": None, "state": "OFFLINE", "worker_id": "", "worker_state": "",
        "last_heartbeat": None, "cores_in_use": 0, "python": "", "platform": "", "earned": "0.000000",
        "created_at": body["created_at"],
        "removed_at": None,
        "agent": {"master_url": "spark://master.example.org:7077", "heartbeat_interval": 7,
                  "heartbeat_timeout": 21,
                  "executor_env": {"TF_USE_LEGACY_KERAS": "1"},
                  "spark_secret": security.cluster_secret(),
                  "spark_conf": {"spark.authenticate": "true",
                                 "spark.network.crypto.enabled": "true"}},
        "token": body["token"],
    }
    assert parse_datetime(body["created_at"]) == machine.created_at
    assert machine.user == alice and machine.state == Machine.OFFLINE


def test_register_machine_issues_its_machine_token_kept_as_a_digest(alice):
    response = client_for(alice).post(URL, VALID, format="json")

    key = response.json()["token"]
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    machine = Machine.objects.get()
    token = ApiToken.objects.get(machine=machine)
    assert (token.user, token.name, token.prefix, token.digest) == (
        alice, "machine", key[:8], key_digest(key))
    # The row holds the digest and the first 8 characters only, never the key.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table} WHERE id = %s", [token.pk])
        assert not any(key in str(value) for value in cursor.fetchone())
    # It is the agent's: its machine's heartbeat, not the owner's other routes.
    heartbeat = client_for().post(f"{URL}{machine.pk}/heartbeat/", {}, format="json",
                                  HTTP_AUTHORIZATION=f"Token {key}")
    assert heartbeat.status_code == 200
    me = client_for().get("/api/auth/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert (me.status_code, me.json()) == (403, {"detail": MACHINE_TOKEN_REFUSED})
    # The owner's own token is unchanged and still the only one of theirs.
    assert list(ApiToken.objects.filter(user=alice, machine=None).values_list(
        "digest", flat=True)) == [key_digest(alice.token)]


def test_each_registration_has_its_own_machine_token(alice):
    first = client_for(alice).post(URL, VALID, format="json").json()
    second = client_for(alice).post(URL, VALID, format="json").json()

    assert first["token"] != second["token"]
    assert {t.machine_id: t.digest for t in ApiToken.objects.exclude(machine=None)} == {
        first["id"]: key_digest(first["token"]), second["id"]: key_digest(second["token"])}


def test_a_refused_registration_issues_no_token(alice):
    before = row_counts()

    response = client_for(alice).post(URL, {**VALID, "cores": 0}, format="json")

    assert response.status_code == 400
    assert row_counts() == before


def test_register_machine_with_every_field(alice):
    body = {**VALID, "machine_type": "gpu", "gpus": 2, "address": "2001:db8::10",
            "sharing_window": "22:00-06:00", "share_until": "2999-01-01T00:00:00Z"}

    response = client_for(alice).post(URL, body, format="json")

    assert response.status_code == 201
    data = response.json()
    assert {k: data[k] for k in body} == body
    machine = Machine.objects.get()
    assert (machine.machine_type, machine.gpus, machine.address, machine.sharing_window) == (
        "gpu", 2, "2001:db8::10", "22:00-06:00")


def test_register_machine_with_only_the_required_fields(alice):
    response = client_for(alice).post(
        URL, {"cores": 1, "memory_mb": 1, "address": "192.0.2.10"}, format="json")

    assert response.status_code == 201
    data = response.json()
    assert (data["name"], data["machine_type"], data["sharing_window"], data["share_until"]) == (
        "", "cpu", "", None)


def test_register_machine_writes_no_history_row(alice):
    # OFFLINE is where every machine starts; history records changes from it.
    client_for(alice).post(URL, VALID, format="json")

    assert MachineStateChange.objects.count() == 0


@pytest.mark.parametrize("address", [
    "192.0.2.10", "2001:db8::1", "node1", "node1.example.org", "node1.example.org.",
    "a-b.c-d.example", "x" * 63 + ".org", ".".join(["a"] * 127),
])
def test_good_addresses_are_accepted(alice, address):
    response = client_for(alice).post(URL, {**VALID, "address": address}, format="json")

    assert response.status_code == 201
    assert response.json()["address"] == address


@pytest.mark.parametrize("field, value, message", [
    ("cores", 0, "Ensure this value is greater than or equal to 1."),
    ("cores", -1, "Ensure this value is greater than or equal to 1."),
    ("cores", 4097, "Ensure this value is less than or equal to 4096."),
    ("cores", "x", "A valid integer is required."),
    ("cores", None, "This field may not be null."),
    ("cores", 1.5, "A valid integer is required."),
    ("cores", True, "A valid integer is required."),
    ("cores", [4], "A valid integer is required."),
    ("memory_mb", 0, "Ensure this value is greater than or equal to 1."),
    ("memory_mb", -512, "Ensure this value is greater than or equal to 1."),
    ("memory_mb", 64 * 1024 * 1024 + 1, "Ensure this value is less than or equal to 67108864."),
    ("memory_mb", 2 ** 63, "Ensure this value is less than or equal to 67108864."),
    ("memory_mb", "lots", "A valid integer is required."),
    ("memory_mb", None, "This field may not be null."),
    ("memory_mb", 1024.5, "A valid integer is required."),
    ("machine_type", "tpu", "Unknown machine type 'tpu'; known: cpu, gpu."),
    ("machine_type", "CPU", "Unknown machine type 'CPU'; known: cpu, gpu."),
    ("machine_type", "", "This field may not be blank."),
    ("machine_type", None, "This field may not be null."),
    ("address", "", "This field may not be blank."),
    ("address", None, "This field may not be null."),
    ("address", "a b", ADDRESS_MESSAGE),
    ("address", "; rm -rf /", ADDRESS_MESSAGE),
    ("address", "$(reboot)", ADDRESS_MESSAGE),
    ("address", "`id`", ADDRESS_MESSAGE),
    ("address", "node1\nnode2", ADDRESS_MESSAGE),
    ("address", "-node1", ADDRESS_MESSAGE),
    ("address", "node1-", ADDRESS_MESSAGE),
    ("address", "node1..example.org", ADDRESS_MESSAGE),
    ("address", "under_score.example.org", ADDRESS_MESSAGE),
    ("address", "x" * 64 + ".org", ADDRESS_MESSAGE),
    ("address", ".".join(["a"] * 127) + "a", ADDRESS_MESSAGE),
    ("address", "http://node1.example.org", ADDRESS_MESSAGE),
    ("address", "node1.example.org:7077", ADDRESS_MESSAGE),
    ("address", "192.0.2.10/24", ADDRESS_MESSAGE),
    # An IPv6 zone id may hold any character, so "IP address" alone lets a shell line in.
    ("address", "fe80::1%; rm -rf /", ADDRESS_MESSAGE),
    ("address", "::1%$(reboot)", ADDRESS_MESSAGE),
    ("name", "n" * 101, "Ensure this field has no more than 100 characters."),
    ("name", "desk\x00", "Null characters are not allowed."),
    ("sharing_window", "9-5", WINDOW_FORMAT),
    ("sharing_window", "25:00-26:00", WINDOW_FORMAT),
    ("sharing_window", "09:00-24:00", WINDOW_FORMAT),
    ("sharing_window", "09:60-18:00", WINDOW_FORMAT),
    ("sharing_window", "09:00-09:00", "the window's start and end are the same time"),
    ("sharing_window", "09:00", "expected HH:MM-HH:MM, e.g. 09:00-18:00"),
    ("sharing_window", "09:00-18:00:00", "Ensure this field has no more than 11 characters."),
    # Times with a UTC offset cannot be compared with the server's clock.
    ("sharing_window", "09+05-18", WINDOW_FORMAT),
    ("sharing_window", "09Z-18Z", WINDOW_FORMAT),
    ("share_until", "2000-01-01T00:00:00Z", "share_until must be in the future."),
    ("share_until", "tomorrow", "Datetime has wrong format. Use one of these formats instead: "
                                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."),
    ("state", "ONLINE", "Unknown field."),
    ("user", 1, "Unknown field."),
    ("earned", "1000", "Unknown field."),
])
def test_bad_input_is_400_and_writes_nothing(alice, field, value, message):
    before = row_counts()

    response = client_for(alice).post(URL, {**VALID, field: value}, format="json")

    assert response.status_code == 400
    assert response.json() == bad_request(field, message)
    assert row_counts() == before


def test_share_until_a_moment_ago_is_refused(alice):
    moment_ago = (timezone.now() - timedelta(seconds=1)).isoformat()

    response = client_for(alice).post(URL, {**VALID, "share_until": moment_ago}, format="json")

    assert response.status_code == 400
    assert response.json() == bad_request("share_until", "share_until must be in the future.")
    assert Machine.objects.count() == 0


def test_missing_fields_are_all_named(alice):
    response = client_for(alice).post(URL, {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "cores: This field is required.; memory_mb: This field is required.; "
                  "address: This field is required.",
        "errors": {"cores": ["This field is required."],
                   "memory_mb": ["This field is required."],
                   "address": ["This field is required."]},
    }
    assert Machine.objects.count() == 0


@pytest.mark.parametrize("body, kind", [([VALID], "list"), ("node1", "str")])
def test_json_that_is_not_an_object_is_400(alice, body, kind):
    response = client_for(alice).post(URL, body, format="json")

    message = f"Invalid data. Expected a dictionary, but got {kind}."
    assert response.status_code == 400
    assert response.json() == {"detail": message, "errors": {"non_field_errors": [message]}}
    assert Machine.objects.count() == 0


def test_non_json_body_is_400(alice):
    response = client_for(alice).post(URL, "cores=4", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - Expecting value: line 1 column 1 (char 0)"}
    assert Machine.objects.count() == 0


# --- GET: listing ---------------------------------------------------------------------------

def test_list_is_empty_for_a_new_user(alice):
    response = client_for(alice).get(URL)

    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_list_shows_own_machines_newest_first(alice, bob):
    first = make_machine(alice, name="first")
    make_machine(bob, name="bobs")
    second = make_machine(alice, name="second", machine_type="gpu", sharing_window="09:00-17:00")

    response = client_for(alice).get(URL)

    assert response.status_code == 200
    assert response.json() == page(second, first)


def test_list_matches_what_register_returned(alice):
    created = client_for(alice).post(URL, VALID, format="json").json()
    del created["agent"], created["token"]

    response = client_for(alice).get(URL)

    assert response.json()["results"] == [created]


def test_list_paginates(alice):
    machines = [make_machine(alice, name=f"m{i}") for i in range(3)]

    first = client_for(alice).get(URL, {"page_size": 2})
    second = client_for(alice).get(URL, {"page_size": 2, "page": 2})

    assert first.status_code == second.status_code == 200
    assert first.json() == {
        "count": 3, "next": "http://testserver/api/machines/?page=2&page_size=2",
        "previous": None, "results": [as_listed(machines[2]), as_listed(machines[1])]}
    assert second.json() == {
        "count": 3, "next": None, "previous": "http://testserver/api/machines/?page_size=2",
        "results": [as_listed(machines[0])]}


@pytest.mark.parametrize("number", ["2", "0", "x"])
def test_page_past_the_end_is_404(alice, number):
    make_machine(alice)

    response = client_for(alice).get(URL, {"page": number})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def test_removed_machines_are_hidden_by_default(alice):
    kept = make_machine(alice, name="kept")
    make_machine(alice, name="gone", state=Machine.REMOVED, removed_at=timezone.now())

    response = client_for(alice).get(URL)

    assert response.json() == page(kept)


def test_state_filter(alice, bob):
    online = make_machine(alice, state=Machine.ONLINE)
    offline = make_machine(alice, state=Machine.OFFLINE)
    paused = make_machine(alice, state=Machine.PAUSED)
    removed = make_machine(alice, state=Machine.REMOVED, removed_at=timezone.now())
    make_machine(bob, state=Machine.ONLINE)
    client = client_for(alice)

    assert client.get(URL, {"state": "ONLINE"}).json() == page(online)
    assert client.get(URL, {"state": "online,paused"}).json() == page(paused, online)
    assert client.get(URL, {"state": "REMOVED"}).json() == page(removed)
    assert client.get(URL, {"state": "offline, removed"}).json() == page(removed, offline)
    assert client.get(URL, {"state": ""}).json() == page(paused, offline, online)


@pytest.mark.parametrize("value, shown", [("BOGUS", "'BOGUS'"), ("online,nope", "'NOPE'"),
                                          (",", "','")])
def test_invalid_state_filter_is_400(alice, value, shown):
    response = client_for(alice).get(URL, {"state": value})

    assert response.status_code == 400
    assert response.json() == bad_request(
        "state", f"Unknown value {shown}; one of ONLINE, OFFLINE, PAUSED, REMOVED.")


def test_staff_lists_only_their_own_without_all(alice, staff):
    own = make_machine(staff)
    make_machine(alice)

    response = client_for(staff).get(URL)

    assert response.json() == page(own)


def test_staff_lists_everyones_with_all_true(alice, bob, staff):
    a = make_machine(alice)
    b = make_machine(bob)
    s = make_machine(staff)
    make_machine(bob, state=Machine.REMOVED, removed_at=timezone.now())

    response = client_for(staff).get(URL, {"all": "true"})

    assert response.status_code == 200
    assert response.json() == page(s, b, a)


def test_staff_all_true_combines_with_state(alice, staff):
    removed = make_machine(alice, state=Machine.REMOVED, removed_at=timezone.now())
    make_machine(alice)

    response = client_for(staff).get(URL, {"all": "true", "state": "REMOVED"})

    assert response.json() == page(removed)


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_non_staff_all_true_is_403(alice, bob, value):
    make_machine(bob)

    response = client_for(alice).get(URL, {"all": value})

    assert response.status_code == 403
    assert response.json() == {"detail": "Only operators may list everyone's objects."}


@pytest.mark.parametrize("value", ["false", "0", "no", ""])
def test_all_false_is_the_plain_list(alice, bob, value):
    mine = make_machine(alice)
    make_machine(bob)

    response = client_for(alice).get(URL, {"all": value})

    assert response.status_code == 200
    assert response.json() == page(mine)


def test_invalid_all_is_400(staff):
    response = client_for(staff).get(URL, {"all": "maybe"})

    assert response.status_code == 400
    assert response.json() == bad_request("all", "Use all=true or all=false.")


# --- Who may call it ------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_is_401(alice, method):
    make_machine(alice)
    before = row_counts()

    response = getattr(client_for(), method)(URL, VALID, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert row_counts() == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_token_is_401(method):
    response = getattr(client_for(), method)(URL, VALID, format="json",
                                             HTTP_AUTHORIZATION="Token nope")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert Machine.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_machine_token_is_403(alice, method):
    # An agent neither lists its owner's machines nor registers new ones.
    client = machine_client(make_machine(alice))
    before = row_counts()

    response = getattr(client, method)(URL, VALID, format="json")

    assert response.status_code == 403
    assert response.json() == {"detail": MACHINE_TOKEN_REFUSED}
    assert row_counts() == before


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_not_allowed(alice, method):
    response = getattr(client_for(alice), method)(URL, VALID, format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


# --- Queries --------------------------------------------------------------------------------

def earning_machines(owner, customer, n, start):
    """n machines of owner's, each with earnings from customer's job (a ledger row of its own),
    so that a row's owner and earnings are there to fetch one by one."""
    from decimal import Decimal

    from dmarket.credits.services import Usage, run_bill_usage, run_hold

    machines = [make_machine(owner, name=f"m{start + i}", address=f"192.0.2.{start + i}")
                for i in range(n)]
    job = make_job(user=customer, name="paid", entry_file="/tmp/app.py",
                   max_credits=Decimal("10"), price_per_core_hour=Decimal("1"),
                   premium_rate=Decimal("1"))
    run_hold(job.run, job.run.label)
    run_bill_usage(job.run, [Usage(str(i), m, 60_000) for i, m in enumerate(machines)])
    return machines


def test_list_queries_do_not_grow_with_machines(alice, bob, django_assert_num_queries):
    client = client_for(alice)
    earning_machines(alice, bob, 1, 1)
    client.get(URL)  # stamps the token's last use, which waits a while after

    # The token (its user and machine joined), the page (owners joined, earnings summed in
    # it; no count while it is the whole list).
    with django_assert_num_queries(2):
        few = client.get(URL)
    earning_machines(alice, bob, 5, 2)
    with django_assert_num_queries(2):
        many = client.get(URL)

    assert few.json()["count"] == 1 and len(few.json()["results"]) == 1
    assert many.json()["count"] == 6 and len(many.json()["results"]) == 6
    assert {m["earned"] for m in many.json()["results"]} == {"0.016667"}


def test_everyones_list_queries_do_not_grow_with_owners(make_user, staff,
                                                        django_assert_num_queries):
    customer = make_user("customer")
    client = client_for(staff)
    earning_machines(make_user(), customer, 1, 1)
    client.get(URL, {"all": "true"})  # stamps the token's last use

    # The token, the page (owners joined): not one more per owner.
    with django_assert_num_queries(2):
        few = client.get(URL, {"all": "true"})
    for i in range(5):
        earning_machines(make_user(), customer, 1, 2 + i)
    with django_assert_num_queries(2):
        many = client.get(URL, {"all": "true"})

    assert few.json()["count"] == 1
    assert many.json()["count"] == 6
    assert len({m["owner"] for m in many.json()["results"]}) == 6
