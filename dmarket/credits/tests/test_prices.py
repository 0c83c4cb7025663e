"""GET /api/prices/: the price of a core-hour and of a GPU-hour, and the market's premium now.

The premium follows unfinished jobs against ONLINE machines: 1 while jobs <= machines,
jobs/machines above that, capped at DMARKET_PREMIUM_CAP.
"""

from decimal import Decimal

import pytest

from dmarket.conftest import client_for
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job as job_create

URL = "/api/prices/"

pytestmark = pytest.mark.django_db


def make_jobs(user, count, status=Job.QUEUED):
    for _ in range(count):
        job_create(user=user, name="train", entry_file="/tmp/app.py", status=status)


def make_machines(user, count, state=Machine.ONLINE):
    for _ in range(count):
        Machine.objects.create(user=user, cores=4, memory_mb=8192, address="192.0.2.10",
                               state=state)


def prices(premium, jobs, machines, effective_premium):
    return {
        "unit": "credits per hour of one core or one GPU",
        "resources": {"core": "1.000000", "gpu": "4.000000"},
        "machine_types": ["cpu", "gpu"],
        "premium_rate": premium,
        "unfinished_jobs": jobs,
        "online_machines": machines,
        "effective": {"core": f"{Decimal(effective_premium):.6f}",
                      "gpu": f"{4 * Decimal(effective_premium):.6f}"},
        "default_job_cap": "10.000000",
        "signup_grant": "100.000000",
    }


def test_empty_market(alice):
    response = client_for(alice).get(URL)

    assert response.status_code == 200
    # With no machine online, a job submitted now would pay the capped premium.
    assert response.json() == {
        "unit": "credits per hour of one core or one GPU",
        "resources": {"core": "1.000000", "gpu": "4.000000"},
        "machine_types": ["cpu", "gpu"],
        "premium_rate": "1.0000",
        "unfinished_jobs": 0,
        "online_machines": 0,
        "effective": {"core": "2.000000", "gpu": "8.000000"},
        "default_job_cap": "10.000000",
        "signup_grant": "100.000000",
    }


@pytest.mark.parametrize("jobs, machines, premium, effective_premium", [
    (0, 1, "1.0000", "1"),        # the next job makes 1 job for 1 machine
    (1, 1, "1.0000", "2"),        # ... 2 jobs for 1 machine
    (2, 4, "1.0000", "1"),
    (3, 3, "1.0000", "1.3333"),
    (3, 2, "1.5000", "2"),
    (4, 3, "1.3333", "1.6667"),   # 5/3 rounds half-up to 4 places
    (5, 2, "2.0000", "2"),        # 2.5, capped
    (9, 1, "2.0000", "2"),
    (1, 0, "2.0000", "2"),        # jobs but no machine: the cap
])
def test_premium_follows_unfinished_jobs_against_online_machines(
        alice, bob, jobs, machines, premium, effective_premium):
    make_jobs(alice, jobs)
    make_machines(bob, machines)

    response = client_for(alice).get(URL)

    assert response.status_code == 200
    assert response.json() == prices(premium, jobs, machines, effective_premium)


def test_only_unfinished_jobs_count(alice, bob):
    make_jobs(alice, 1, Job.QUEUED)
    make_jobs(alice, 1, Job.STARTING)
    make_jobs(alice, 1, Job.RUNNING)
    for status in Job.FINISHED:
        make_jobs(alice, 2, status)
    make_machines(bob, 2)

    response = client_for(alice).get(URL)

    assert response.json() == prices("1.5000", 3, 2, "2")


def test_only_online_machines_count(alice, bob):
    make_jobs(alice, 2)
    make_machines(bob, 1, Machine.ONLINE)
    make_machines(bob, 3, Machine.OFFLINE)
    make_machines(bob, 3, Machine.PAUSED)
    make_machines(bob, 3, Machine.REMOVED)

    response = client_for(alice).get(URL)

    assert response.json() == prices("2.0000", 2, 1, "2")


def test_everyone_sees_the_same_market(alice, bob):
    make_jobs(alice, 3)
    make_machines(alice, 2)

    assert client_for(alice).get(URL).json() == client_for(bob).get(URL).json() == prices(
        "1.5000", 3, 2, "2")


def test_prices_and_cap_come_from_settings(settings, alice, bob):
    # An operator's own accelerator (a Spark resource "fpga") is a machine type too.
    settings.DMARKET_PRICES = {"core": Decimal("0.5"), "gpu": Decimal("3.25"),
                               "fpga": Decimal("0.125")}
    settings.DMARKET_PREMIUM_CAP = Decimal("3")
    settings.DMARKET_DEFAULT_JOB_CAP = Decimal("7.5")
    make_jobs(alice, 5)
    make_machines(bob, 2)

    response = client_for(alice).get(URL)

    assert response.json() == {
        "unit": "credits per hour of one core or one GPU",
        "resources": {"core": "0.500000", "gpu": "3.250000", "fpga": "0.125000"},
        "machine_types": ["cpu", "gpu", "fpga"],
        "premium_rate": "2.5000",
        "unfinished_jobs": 5,
        "online_machines": 2,
        "effective": {"core": "1.500000", "gpu": "9.750000", "fpga": "0.375000"},
        "default_job_cap": "7.500000",
        "signup_grant": "100.000000",
    }


def test_anonymous_is_401():
    response = client_for().get(URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(alice, method):
    response = getattr(client_for(alice), method)(URL, {}, format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
