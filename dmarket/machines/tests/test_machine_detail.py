"""GET and DELETE /api/machines/{id}/: the owner's machine; operators may see and remove any."""

from decimal import Decimal

import pytest
from django.utils.dateparse import parse_datetime

from dmarket.accounts.models import ApiToken
from dmarket.accounts.permissions import MACHINE_TOKEN_REFUSED
from dmarket.conftest import client_for, machine_client
from dmarket.credits.services import Usage, run_bill_usage, run_hold
from dmarket.machines.models import Machine, MachineStateChange
from dmarket.jobs.tests.factories import make_job

NOT_FOUND = {"detail": "No Machine matches the given query."}

pytestmark = pytest.mark.django_db


def url(machine_or_pk):
    pk = getattr(machine_or_pk, "pk", machine_or_pk)
    return f"/api/machines/{pk}/"


def make_machine(user, **fields):
    defaults = {"name": "desk", "cores": 4, "memory_mb": 8192, "address": "192.0.2.10"}
    return Machine.objects.create(user=user, **{**defaults, **fields})


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def expected(machine, earned="0.000000"):
    machine.refresh_from_db()
    return {"id": machine.pk, "owner": machine.user.username, "name": machine.name,
            "cores": machine.cores, "memory_mb": machine.memory_mb,
            "machine_type": machine.machine_type, "gpus": machine.gpus,
            "address": machine.address,
            "sharing_window": machine.sharing_window, "share_until": iso(machine.share_until),
            "state": machine.state, "worker_id": machine.worker_id,
            "worker_state": machine.worker_state, "last_heartbeat": iso(machine.last_heartbeat),
            "cores_in_use": machine.cores_in_use, "python": machine.python,
            "platform": machine.platform,
            "earned": earned, "created_at": iso(machine.created_at),
            "removed_at": iso(machine.removed_at)}


def history(machine):
    return list(MachineStateChange.objects.filter(machine=machine)
                .values_list("state", "reason"))


# --- GET ------------------------------------------------------------------------------------

def test_owner_gets_their_machine(alice):
    machine = make_machine(alice, sharing_window="09:00-17:00")

    response = client_for(alice).get(url(machine))

    assert response.status_code == 200
    assert response.json() == expected(machine)


def test_another_users_machine_is_404(alice, bob):
    machine = make_machine(alice)

    response = client_for(bob).get(url(machine))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_staff_gets_any_machine(alice, staff):
    machine = make_machine(alice)

    response = client_for(staff).get(url(machine))

    assert response.status_code == 200
    assert response.json() == expected(machine)


def test_anonymous_is_401(alice):
    machine = make_machine(alice)

    response = client_for().get(url(machine))

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("pk", [0, 999999, 2 ** 63, 10 ** 30])
def test_missing_machine_is_404(alice, pk):
    response = client_for(alice).get(url(pk))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_non_numeric_id_is_a_json_404(alice):
    response = client_for(alice).get("/api/machines/abc/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such page: /api/machines/abc/"}


def test_the_machine_token_gets_its_machine(alice):
    machine = make_machine(alice)

    response = machine_client(machine).get(url(machine))

    assert response.status_code == 200
    assert response.json() == expected(machine)


@pytest.mark.parametrize("whose", ["same owner", "another user"])
def test_the_machine_token_on_another_machine_is_403(alice, bob, whose):
    machine = make_machine(alice)
    other = make_machine(alice if whose == "same owner" else bob, name="other")

    response = machine_client(machine).get(url(other))

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"This token is machine {machine.pk}'s; it cannot act for another machine."}


def test_earned_sums_only_the_machines_earnings(alice, bob):
    machine = make_machine(bob)
    other = make_machine(bob, name="other")
    job = make_job(user=alice, name="train", entry_file="/tmp/app.py",
                   max_credits=Decimal("10"), price_per_core_hour=Decimal("1"),
                   premium_rate=Decimal("1"))
    run_hold(job.run, job.run.label)
    run_bill_usage(job.run, [Usage("1", machine, 3_600_000), Usage("2", machine, 1_800_000),
                         Usage("3", other, 360_000)])

    response = client_for(bob).get(url(machine))

    assert response.status_code == 200
    assert response.json() == expected(machine, earned="1.500000")
    # The job's owner sees nothing of bob's machine, and bob's charge rows are not earnings.
    assert client_for(alice).get(url(machine)).status_code == 404


# --- DELETE ---------------------------------------------------------------------------------

def test_owner_removes_their_machine(alice):
    machine = make_machine(alice, state=Machine.ONLINE)

    response = client_for(alice).delete(url(machine))

    assert response.status_code == 204
    assert response.content == b""
    machine.refresh_from_db()
    assert machine.state == Machine.REMOVED
    assert machine.removed_at is not None
    assert history(machine) == [("REMOVED", "removed by alice")]


def test_removed_machine_still_gets_with_state_removed(alice):
    machine = make_machine(alice)
    client_for(alice).delete(url(machine))

    response = client_for(alice).get(url(machine))

    assert response.status_code == 200
    body = response.json()
    assert body == expected(machine)
    assert body["state"] == "REMOVED"
    assert parse_datetime(body["removed_at"]) == machine.removed_at


def test_removal_keeps_the_machines_history(alice):
    machine = make_machine(alice)
    assert client_for(alice).post(f"{url(machine)}heartbeat/", {}, format="json").json()[
        "state"] == "ONLINE"

    client_for(alice).delete(url(machine))

    assert history(machine) == [("REMOVED", "removed by alice"), ("ONLINE", "heartbeat")]
    assert Machine.objects.filter(pk=machine.pk).exists()


def test_delete_twice_is_409(alice):
    machine = make_machine(alice)
    client_for(alice).delete(url(machine))
    removed_at = Machine.objects.get(pk=machine.pk).removed_at

    response = client_for(alice).delete(url(machine))

    assert response.status_code == 409
    assert response.json() == {"detail": f"Machine {machine.pk} was already removed."}
    machine.refresh_from_db()
    assert machine.removed_at == removed_at
    assert history(machine) == [("REMOVED", "removed by alice")]


def test_another_user_cannot_remove_it(alice, bob):
    machine = make_machine(alice, state=Machine.ONLINE)

    response = client_for(bob).delete(url(machine))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    machine.refresh_from_db()
    assert machine.state == Machine.ONLINE
    assert history(machine) == []


def test_staff_removes_any_machine(alice, staff):
    machine = make_machine(alice, state=Machine.ONLINE)

    response = client_for(staff).delete(url(machine))

    assert response.status_code == 204
    machine.refresh_from_db()
    assert machine.state == Machine.REMOVED
    assert history(machine) == [("REMOVED", "removed by operator")]


def test_anonymous_cannot_remove_it(alice):
    machine = make_machine(alice, state=Machine.ONLINE)

    response = client_for().delete(url(machine))

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    machine.refresh_from_db()
    assert machine.state == Machine.ONLINE
    assert history(machine) == []


def test_removal_revokes_the_machines_tokens_only(alice):
    machine, other = make_machine(alice), make_machine(alice, name="other")
    agent, other_agent = machine_client(machine), machine_client(other)

    response = client_for(alice).delete(url(machine))

    assert response.status_code == 204
    assert agent.get(url(machine)).status_code == 401
    assert agent.get(url(machine)).json() == {"detail": "Invalid token."}
    assert list(ApiToken.objects.exclude(machine=None).values_list("machine", flat=True)) == [
        other.pk]
    assert other_agent.get(url(other)).status_code == 200
    assert client_for(alice).get(url(machine)).status_code == 200


def test_staff_removal_revokes_the_machines_token(alice, staff):
    machine = make_machine(alice)
    agent = machine_client(machine)

    assert client_for(staff).delete(url(machine)).status_code == 204

    assert agent.get(url(machine)).status_code == 401


def test_the_machine_token_cannot_remove_its_machine(alice):
    machine = make_machine(alice, state=Machine.ONLINE)

    response = machine_client(machine).delete(url(machine))

    assert response.status_code == 403
    assert response.json() == {"detail": MACHINE_TOKEN_REFUSED}
    machine.refresh_from_db()
    assert machine.state == Machine.ONLINE
    assert history(machine) == []


@pytest.mark.parametrize("pk", [999999, 10 ** 30])
def test_delete_missing_machine_is_404(alice, pk):
    response = client_for(alice).delete(url(pk))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_other_methods_are_not_allowed(alice, method):
    machine = make_machine(alice)

    response = getattr(client_for(alice), method)(url(machine), {"cores": 64}, format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    machine.refresh_from_db()
    assert machine.cores == 4
