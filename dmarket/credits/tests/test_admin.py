"""The operators' admin: balances on the user list, granting credits, and the actions on
machines and jobs. The ledger itself is append-only there too."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dmarket.credits.models import Account, LedgerEntry
from dmarket.credits.services import credits_adjust, run_hold
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine, MachineStateChange
from dmarket.jobs.tests.factories import make_job as job_create

User = get_user_model()
D = Decimal

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.org", "a long test password 1")


@pytest.fixture
def admin_client(root):
    client = Client()
    client.force_login(root)
    return client


def make_machine(user, state=Machine.ONLINE, **fields):
    return Machine.objects.create(user=user, cores=4, memory_mb=8192, address="192.0.2.10",
                                  state=state, **fields)


def make_job(user, status=Job.QUEUED, max_credits="10"):
    job = job_create(user=user, name="train", entry_file="/tmp/app.py", status=status,
                     max_credits=D(max_credits), price_per_core_hour=D("1"))
    run_hold(job.run, job.run.label)
    return job


def action(client, url, name, objects, **extra):
    return client.post(url, {"action": name, "_selected_action": [o.pk for o in objects],
                             **extra})


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


# --- Changelists ----------------------------------------------------------------------------

def test_user_list_shows_balances(admin_client, root, alice, bob):
    credits_adjust(alice, D("23.456789"), "gift", root, key="adjustment:t")
    make_job(bob, max_credits="7.25")

    response = admin_client.get("/admin/auth/user/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "123.456789" in content   # alice's balance
    assert "7.250000" in content     # bob's held credits


def test_user_list_loads_with_a_user_who_has_no_account(settings, admin_client, make_user):
    # With no sign-up grant a new user has no ledger row, so no account row.
    settings.DMARKET_SIGNUP_GRANT = D("0")
    dave = make_user("dave")
    assert not Account.objects.filter(user=dave).exists()

    response = admin_client.get("/admin/auth/user/")

    assert response.status_code == 200
    assert "dave" in response.content.decode()


@pytest.mark.parametrize("ordering", ["4", "-4", "5", "6", "7"])
def test_user_list_sorts_by_the_balance_columns(admin_client, alice, bob, ordering):
    response = admin_client.get("/admin/auth/user/", {"o": ordering})

    assert response.status_code == 200


def test_machine_list_loads(admin_client, alice):
    make_machine(alice, name="desk-of-alice")

    response = admin_client.get("/admin/machines/machine/")

    assert response.status_code == 200
    assert "desk-of-alice" in response.content.decode()


def test_machine_page_loads_with_its_history(admin_client, alice):
    machine = make_machine(alice, state=Machine.OFFLINE)
    MachineStateChange.objects.create(machine=machine, state=Machine.ONLINE, reason="heartbeat")

    response = admin_client.get(f"/admin/machines/machine/{machine.pk}/change/")

    assert response.status_code == 200


def test_job_list_loads(admin_client, alice):
    make_job(alice)

    response = admin_client.get("/admin/jobs/job/")

    assert response.status_code == 200
    assert "10.000000" in response.content.decode()


def test_ledger_list_loads(admin_client, alice):
    make_job(alice, max_credits="3.5")

    response = admin_client.get("/admin/credits/ledgerentry/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "hold for job" in content and "sign-up grant" in content


def test_non_staff_cannot_reach_the_admin(alice):
    client = Client()
    client.force_login(alice)

    response = client.get("/admin/auth/user/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- Granting credits -----------------------------------------------------------------------

def test_grant_credits_asks_for_amount_and_memo_first(admin_client, alice, bob):
    rows = LedgerEntry.objects.count()

    response = action(admin_client, "/admin/auth/user/", "grant_credits", [alice, bob])

    assert response.status_code == 200
    content = response.content.decode()
    assert "Grant credits to" in content and "alice" in content and "bob" in content
    assert LedgerEntry.objects.count() == rows


def test_grant_credits_writes_one_adjustment_per_user(admin_client, root, alice, bob, staff):
    response = action(admin_client, "/admin/auth/user/", "grant_credits", [alice, bob],
                      apply="1", amount="25.5", memo="conference")

    assert response.status_code == 302
    rows = LedgerEntry.objects.filter(kind=LedgerEntry.ADJUSTMENT).order_by("user__username")
    assert [(r.user, r.amount, r.memo, r.created_by) for r in rows] == [
        (alice, D("25.5"), "conference", root), (bob, D("25.5"), "conference", root)]
    assert Account.objects.get(user=alice).balance == D("125.5")
    assert Account.objects.get(user=bob).balance == D("125.5")
    assert Account.objects.get(user=staff).balance == D("100")


def test_grant_credits_can_take_credits_back(admin_client, alice):
    action(admin_client, "/admin/auth/user/", "grant_credits", [alice], apply="1",
           amount="-40", memo="refund reversed")

    assert Account.objects.get(user=alice).balance == D("60")


def test_grant_credits_never_overdraws(admin_client, alice, bob):
    make_job(alice, max_credits="90")

    response = action(admin_client, "/admin/auth/user/", "grant_credits", [alice, bob],
                      apply="1", amount="-20", memo="correction")

    assert response.status_code == 302
    assert LedgerEntry.objects.filter(kind=LedgerEntry.ADJUSTMENT, user=alice).count() == 0
    assert Account.objects.get(user=alice).balance == D("100")
    assert Account.objects.get(user=bob).balance == D("80")
    assert "alice: not changed, 20.000000 credits needed, 10.000000 available." in (
        messages_of(response))


@pytest.mark.parametrize("amount, memo", [("0", "nothing"), ("abc", "x"), ("5", ""),
                                          ("1.0000001", "too fine")])
def test_grant_credits_with_bad_input_writes_nothing(admin_client, alice, amount, memo):
    rows = LedgerEntry.objects.count()

    response = action(admin_client, "/admin/auth/user/", "grant_credits", [alice], apply="1",
                      amount=amount, memo=memo)

    assert response.status_code == 200   # the form again, with its errors
    assert "errorlist" in response.content.decode()
    assert LedgerEntry.objects.count() == rows


# --- Machines and jobs ----------------------------------------------------------------------

def test_mark_offline(admin_client, alice, bob):
    online = make_machine(alice, Machine.ONLINE)
    paused = make_machine(bob, Machine.PAUSED)
    offline = make_machine(bob, Machine.OFFLINE)
    removed = make_machine(alice, Machine.REMOVED)

    response = action(admin_client, "/admin/machines/machine/", "mark_offline",
                      [online, paused, offline, removed])

    assert response.status_code == 302
    states = {m.pk: m.state for m in Machine.objects.all()}
    assert states == {online.pk: "OFFLINE", paused.pk: "OFFLINE", offline.pk: "OFFLINE",
                      removed.pk: "REMOVED"}
    changes = sorted(MachineStateChange.objects.values_list("machine_id", "state", "reason"))
    assert changes == [(online.pk, "OFFLINE", "marked offline by root"),
                       (paused.pk, "OFFLINE", "marked offline by root")]
    assert "2 machine(s) marked offline." in messages_of(response)


def test_cancel_jobs_cancels_a_queued_job_and_releases_its_hold(admin_client, alice):
    job = make_job(alice, max_credits="12")
    assert Account.objects.get(user=alice).held == D("12")

    response = action(admin_client, "/admin/jobs/job/", "cancel_jobs", [job])

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.status_reason) == ("CANCELLED", "cancelled by operator root")
    assert job.finished_at is not None
    account = Account.objects.get(user=alice)
    assert (account.balance, account.held) == (D("100"), D("0"))
    release = LedgerEntry.objects.get(run=job.run, kind=LedgerEntry.RELEASE)
    assert release.held == D("-12")
    assert f"Job {job.pk} cancelled." in messages_of(response)


def test_cancel_jobs_asks_a_running_job_to_stop(admin_client, alice):
    job = make_job(alice, status=Job.RUNNING)

    response = action(admin_client, "/admin/jobs/job/", "cancel_jobs", [job])

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == ("RUNNING", True)
    assert Account.objects.get(user=alice).held == D("10")
    assert f"Job {job.pk} asked to stop." in messages_of(response)


def test_cancel_jobs_leaves_a_finished_job_alone(admin_client, alice):
    job = make_job(alice, status=Job.SUCCEEDED)
    rows = LedgerEntry.objects.count()

    response = action(admin_client, "/admin/jobs/job/", "cancel_jobs", [job])

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "SUCCEEDED"
    assert LedgerEntry.objects.count() == rows
    assert f"Job {job.pk} has already finished (SUCCEEDED)." in messages_of(response)


# --- The ledger is append-only --------------------------------------------------------------

def test_ledger_entries_cannot_be_added(admin_client):
    assert admin_client.get("/admin/credits/ledgerentry/add/").status_code == 403


def test_ledger_entries_cannot_be_changed(admin_client, alice):
    entry = LedgerEntry.objects.get(user=alice)
    url = f"/admin/credits/ledgerentry/{entry.pk}/change/"

    # Operators may look at a row, read-only...
    assert admin_client.get(url).status_code == 200
    # ... but not save one.
    response = admin_client.post(url, {"amount": "1000000", "memo": "free money"})

    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.amount == D("100")


def test_ledger_entries_cannot_be_deleted(admin_client, alice):
    entry = LedgerEntry.objects.get(user=alice)
    url = f"/admin/credits/ledgerentry/{entry.pk}/delete/"

    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_ledger_list_offers_no_bulk_delete(admin_client, alice):
    entry = LedgerEntry.objects.get(user=alice)

    response = action(admin_client, "/admin/credits/ledgerentry/", "delete_selected", [entry],
                      post="yes")

    # Without delete permission the list has no actions at all: the POST just shows it again.
    assert response.status_code == 200
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()
    assert "delete_selected" not in admin_client.get(
        "/admin/credits/ledgerentry/").content.decode()


def machine_form(machine, **changes):
    data = {"user": machine.user_id, "name": machine.name, "cores": machine.cores,
            "memory_mb": machine.memory_mb, "machine_type": machine.machine_type,
            "gpus": machine.gpus,
            "address": machine.address, "sharing_window": machine.sharing_window,
            "share_until_0": "", "share_until_1": "",
            "history-TOTAL_FORMS": "0", "history-INITIAL_FORMS": "0",
            "history-MIN_NUM_FORMS": "0", "history-MAX_NUM_FORMS": "1000"}
    return {**data, **changes}


def test_operator_can_edit_a_machine(admin_client, alice):
    machine = make_machine(alice, Machine.OFFLINE)

    response = admin_client.post(f"/admin/machines/machine/{machine.pk}/change/",
                                 machine_form(machine, cores="16", sharing_window="08:00-20:00"))

    assert response.status_code == 302
    machine.refresh_from_db()
    assert (machine.cores, machine.sharing_window) == (16, "08:00-20:00")


@pytest.mark.parametrize("field, value", [
    # The agent's next heartbeat could not read these windows.
    ("sharing_window", "garbage"),
    ("sharing_window", "09:00-09:00"),
    ("sharing_window", "09+05-18"),
    # The API refuses these; the admin must not let them in either.
    ("address", "; rm -rf /"),
    ("machine_type", "tpu"),
    # A cpu machine offers no GPU, a gpu machine some, and no machine past the limit.
    ("gpus", "2"),
    ("machine_type", "gpu"),
    ("gpus", "-1"),
    ("gpus", "65"),
])
def test_machine_form_refuses_what_the_api_refuses(admin_client, alice, field, value):
    machine = make_machine(alice, Machine.OFFLINE)

    response = admin_client.post(f"/admin/machines/machine/{machine.pk}/change/",
                                 machine_form(machine, **{field: value}))

    assert response.status_code == 200   # the form again, with its errors
    assert "errorlist" in response.content.decode()
    machine.refresh_from_db()
    assert (machine.sharing_window, machine.address, machine.machine_type, machine.gpus) == (
        "", "192.0.2.10", "cpu", 0)
    heartbeat = Client().post(f"/api/machines/{machine.pk}/heartbeat/", {},
                              content_type="application/json",
                              HTTP_AUTHORIZATION=f"Token {alice.token}")
    assert heartbeat.status_code == 200
