"""GET /api/credits/: the user's balance, what is held for jobs, and what is left."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from dmarket.conftest import client_for
from dmarket.credits.models import Account
from dmarket.credits.services import Usage, credits_adjust, run_bill_usage, run_hold, run_release
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job as job_create

URL = "/api/credits/"

pytestmark = pytest.mark.django_db


def credits(balance, held="0.000000", earned="0.000000", spent="0.000000", available=None):
    if available is None:
        available = f"{Decimal(balance) - Decimal(held):.6f}"
    return {"balance": balance, "held": held, "available": available, "earned": earned,
            "spent": spent}


def make_job(user, max_credits="10"):
    job = job_create(user=user, name="train", entry_file="/tmp/app.py",
                     max_credits=Decimal(max_credits), price_per_core_hour=Decimal("1"),
                     premium_rate=Decimal("1"))
    run_hold(job.run, job.run.label)
    return job


def test_new_user_has_the_signup_grant(alice):
    response = client_for(alice).get(URL)

    assert response.status_code == 200
    assert response.json() == {"balance": "100.000000", "held": "0.000000",
                               "available": "100.000000", "earned": "0.000000",
                               "spent": "0.000000"}


def test_a_jobs_hold_is_held_not_spent(alice):
    make_job(alice, max_credits="12.5")

    response = client_for(alice).get(URL)

    assert response.json() == credits("100.000000", held="12.500000", available="87.500000")


def test_billing_shows_as_spent_and_earned(alice, bob):
    job = make_job(alice)
    machine = Machine.objects.create(user=bob, cores=4, memory_mb=8192, address="192.0.2.10")
    run_bill_usage(job.run, [Usage("1", machine, 5_400_000)])

    assert client_for(alice).get(URL).json() == credits(
        "98.500000", held="8.500000", available="90.000000", spent="1.500000")
    assert client_for(bob).get(URL).json() == credits("101.500000", earned="1.500000")

    run_release(job.run)

    assert client_for(alice).get(URL).json() == credits(
        "98.500000", available="98.500000", spent="1.500000")


def test_micro_credits_are_shown_exactly(alice, staff):
    credits_adjust(alice, Decimal("0.000001"), "rounding check", staff, key="adjustment:test")

    response = client_for(alice).get(URL)

    assert response.json() == credits("100.000001")


def test_user_without_an_account_sees_zeros(settings):
    # With no sign-up grant no ledger row, so no account row, exists yet.
    settings.DMARKET_SIGNUP_GRANT = Decimal("0")
    user = get_user_model().objects.create_user("dave", "", "a long test password 1")
    assert not Account.objects.filter(user=user).exists()
    user.token = client_for().post("/api/auth/login/", {
        "username": "dave", "password": "a long test password 1"}, format="json").json()["token"]

    response = client_for(user).get(URL)

    assert response.status_code == 200
    assert response.json() == credits("0.000000")


def test_each_user_sees_only_their_own(alice, bob, staff):
    credits_adjust(bob, Decimal("5"), "bonus", staff, key="adjustment:bob")

    assert client_for(alice).get(URL).json() == credits("100.000000")
    assert client_for(bob).get(URL).json() == credits("105.000000")


def test_anonymous_is_401():
    response = client_for().get(URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(alice, method):
    response = getattr(client_for(alice), method)(URL, {"balance": "1000000"}, format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert Account.objects.get(user=alice).balance == Decimal("100")
