"""GET /api/machines/{id}/history/: when the machine was online, offline, paused, removed."""

from dmarket.accounts.permissions import MACHINE_TOKEN_REFUSED
from dmarket.conftest import client_for, machine_client
from dmarket.machines.models import Machine
from dmarket.machines.services import machine_set_state


def make_machine(user):
    return Machine.objects.create(user=user, cores=1, memory_mb=1024, address="192.0.2.1")


def test_owner_sees_the_state_changes_newest_first(alice):
    machine = make_machine(alice)
    machine_set_state(machine, Machine.ONLINE, "heartbeat")
    machine_set_state(machine, Machine.OFFLINE, "no heartbeat for 30 s")

    response = client_for(alice).get(f"/api/machines/{machine.pk}/history/")

    assert response.status_code == 200
    body = response.json()
    assert [(r["state"], r["reason"]) for r in body["results"]] == [
        ("OFFLINE", "no heartbeat for 30 s"), ("ONLINE", "heartbeat")]
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)


def test_authorization(alice, bob, staff):
    machine = make_machine(alice)
    url = f"/api/machines/{machine.pk}/history/"
    assert client_for(bob).get(url).json() == {"detail": "No Machine matches the given query."}
    assert client_for(bob).get(url).status_code == 404
    assert client_for(staff).get(url).status_code == 200
    assert client_for().get(url).status_code == 401
    assert client_for(alice).get("/api/machines/999999/history/").status_code == 404


def test_the_machine_token_is_403(alice):
    # Its agent needs no history: a machine token is for the heartbeat and the machine.
    machine = make_machine(alice)

    response = machine_client(machine).get(f"/api/machines/{machine.pk}/history/")

    assert response.status_code == 403
    assert response.json() == {"detail": MACHINE_TOKEN_REFUSED}


def test_history_queries_do_not_grow_with_state_changes(alice, django_assert_num_queries):
    machine = make_machine(alice)
    url = f"/api/machines/{machine.pk}/history/"
    client = client_for(alice)
    machine_set_state(machine, Machine.ONLINE, "heartbeat")
    client.get(url)  # stamps the token's last use, which waits a while after

    # The token, the machine (may the user see it), the page (no count while it is the whole
    # list).
    with django_assert_num_queries(3):
        few = client.get(url)
    for i in range(5):
        machine_set_state(machine, Machine.OFFLINE if i % 2 == 0 else Machine.ONLINE,
                          f"change {i}")
    with django_assert_num_queries(3):
        many = client.get(url)

    assert few.json()["count"] == 1 and len(few.json()["results"]) == 1
    assert many.json()["count"] == 6 and len(many.json()["results"]) == 6
