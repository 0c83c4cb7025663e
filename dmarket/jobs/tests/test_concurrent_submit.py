"""Submits racing each other on real PostgreSQL: the account lock must keep a balance from
being spent twice and a submission_id from creating two jobs."""

import pytest

from dmarket.common.tests.concurrency import at_once
from dmarket.conftest import client_for
from dmarket.credits.models import Account, LedgerEntry
from dmarket.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def race(n, request):
    """Run request() in n threads released at once; return their responses."""
    responses = at_once(lambda i: request(), n)
    assert [r for r in responses if isinstance(r, Exception)] == []
    return responses


def test_twenty_submits_against_one_balance(alice, entry_file):
    def submit():
        return client_for(alice).post("/api/jobs/", {"name": "race", "entry_file": entry_file},
                                      format="json")

    responses = race(20, submit)

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 10 + [402] * 10
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 10
    assert Job.objects.filter(user=alice).count() == 10
    assert LedgerEntry.objects.filter(user=alice, kind="hold").count() == 10
    account = Account.objects.get(user=alice)
    assert (str(account.balance), str(account.held), str(account.available)) == (
        "100.000000", "100.000000", "0.000000")
    # Every row's running totals, in the order they were written: never overdrawn.
    for row in LedgerEntry.objects.filter(user=alice).order_by("id"):
        assert row.held_after <= row.balance_after
        assert row.held_after >= 0


def test_ten_retries_of_one_submission_id(alice, entry_file):
    def submit():
        return client_for(alice).post("/api/jobs/", {"name": "retry", "entry_file": entry_file,
                                                     "submission_id": "once"}, format="json")

    responses = race(10, submit)

    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert Job.objects.filter(user=alice).count() == 1
    assert LedgerEntry.objects.filter(user=alice, kind="hold").count() == 1
    assert str(Account.objects.get(user=alice).held) == "10.000000"


def test_two_users_racing_do_not_share_a_balance(alice, bob, entry_file):
    users = [alice, bob] * 10

    def submit():
        user = users.pop()
        return user.username, client_for(user).post(
            "/api/jobs/", {"name": "race", "entry_file": entry_file, "max_credits": "20"},
            format="json")

    results = race(20, submit)

    for name in ("alice", "bob"):
        codes = sorted(r.status_code for who, r in results if who == name)
        assert codes == [201] * 5 + [402] * 5
    for user in (alice, bob):
        assert str(Account.objects.get(user=user).available) == "0.000000"


def test_concurrent_cancels_release_once(alice, entry_file):
    job_id = client_for(alice).post("/api/jobs/", {"name": "c", "entry_file": entry_file},
                                    format="json").json()["id"]

    responses = race(10, lambda: client_for(alice).post(f"/api/jobs/{job_id}/cancel/"))

    assert sorted(r.status_code for r in responses) == [200] + [409] * 9
    assert LedgerEntry.objects.filter(run__job=job_id, kind="release").count() == 1
    assert str(Account.objects.get(user=alice).held) == "0.000000"
