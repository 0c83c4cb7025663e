"""GET /api/credits/transactions/: the user's own ledger rows, newest first, in keyset pages
(a cursor, no count: the ledger grows without bound)."""

import base64
from decimal import Decimal

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.credits.services import Usage, credits_adjust, run_bill_usage, run_hold
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job

URL = "/api/credits/transactions/"
KINDS = "GRANT, HOLD, RELEASE, CHARGE, EARNING, REFUND, ADJUSTMENT"

pytestmark = pytest.mark.django_db


def as_listed(entry):
    return {"id": entry.pk, "kind": entry.kind, "amount": f"{entry.amount:.6f}",
            "held": f"{entry.held:.6f}", "balance_after": f"{entry.balance_after:.6f}",
            "held_after": f"{entry.held_after:.6f}", "run": entry.run_id,
            "job": getattr(getattr(entry.run, "job", None), "pk", None),
            "inference_job": getattr(getattr(entry.run, "inference", None), "pk", None),
            "machine": entry.machine_id, "memo": entry.memo,
            "created_at": entry.created_at.isoformat().replace("+00:00", "Z")}


def page(*entries):
    return {"next": None, "previous": None,
            "results": [as_listed(e) for e in entries]}


def rows(user, kind=None):
    qs = LedgerEntry.objects.filter(user=user).order_by("-id")
    return list(qs.filter(kind=kind) if kind else qs)


@pytest.fixture
def billed(alice, bob):
    """alice's job ran on bob's machine: rows of several kinds for both."""
    job = make_job(user=alice, name="train", entry_file="/tmp/app.py",
                   max_credits=Decimal("10"), price_per_core_hour=Decimal("1"),
                   premium_rate=Decimal("1"))
    run_hold(job.run, job.run.label)
    machine = Machine.objects.create(user=bob, cores=4, memory_mb=8192, address="192.0.2.10")
    run_bill_usage(job.run, [Usage("1", machine, 3_600_000)])
    return job, machine


def test_new_user_sees_the_signup_grant(alice):
    grant = LedgerEntry.objects.get(user=alice)

    response = client_for(alice).get(URL)

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": [{
        "id": grant.pk, "kind": "grant", "amount": "100.000000", "held": "0.000000",
        "balance_after": "100.000000", "held_after": "0.000000", "run": None, "job": None,
        "inference_job": None, "machine": None,
        "memo": "sign-up grant", "created_at": as_listed(grant)["created_at"]}]}


def test_rows_are_newest_first_with_job_and_machine(alice, billed):
    job, machine = billed

    response = client_for(alice).get(URL)

    charge, hold, grant = rows(alice)
    assert (charge.kind, hold.kind, grant.kind) == ("charge", "hold", "grant")
    assert response.json() == page(charge, hold, grant)
    assert response.json()["results"][0] == {
        "id": charge.pk, "kind": "charge", "amount": "-1.000000", "held": "-1.000000",
        "balance_after": "99.000000", "held_after": "9.000000", "run": job.run_id,
        "job": job.pk, "inference_job": None, "machine": machine.pk,
        "memo": f"job {job.pk} on machine {machine.pk}: usage 1, 3600000 core-ms",
        "created_at": as_listed(charge)["created_at"]}


def test_an_inference_jobs_rows_name_it(alice):
    from dmarket.inference.tests.util import submit

    ijob = submit(alice)
    hold = LedgerEntry.objects.get(user=alice, kind=LedgerEntry.HOLD)

    response = client_for(alice).get(URL)

    assert response.status_code == 200
    assert response.json()["results"][0] == {
        "id": hold.pk, "kind": "hold", "amount": "0.000000", "held": "5.000000",
        "balance_after": "100.000000", "held_after": "5.000000", "run": ijob.run_id,
        "job": None, "inference_job": ijob.pk, "machine": None,
        "memo": f"hold for inference job {ijob.pk}",
        "created_at": as_listed(hold)["created_at"]}


def test_only_own_rows_are_listed(alice, bob, billed):
    response = client_for(bob).get(URL)

    earning, grant = rows(bob)
    assert response.json() == page(earning, grant)
    assert earning.kind == "earning" and earning.amount == Decimal("1")


def test_staff_see_only_their_own_rows_too(staff, billed):
    response = client_for(staff).get(URL, {"all": "true"})

    assert response.json() == page(*rows(staff))


@pytest.mark.parametrize("kind, expected_kinds", [
    ("grant", ["grant"]),
    ("HOLD", ["hold"]),
    ("charge,hold", ["charge", "hold"]),
    ("earning", []),
    ("", ["charge", "hold", "grant"]),
])
def test_kind_filter(alice, billed, kind, expected_kinds):
    response = client_for(alice).get(URL, {"kind": kind})

    assert response.status_code == 200
    assert response.json() == page(*[e for e in rows(alice) if e.kind in expected_kinds])


def test_kind_filter_for_adjustments(alice, staff):
    credits_adjust(alice, Decimal("-2.5"), "correction", staff, key="adjustment:t")

    response = client_for(alice).get(URL, {"kind": "adjustment"})

    assert response.json() == page(*rows(alice, "adjustment"))
    assert response.json()["results"][0]["amount"] == "-2.500000"


@pytest.mark.parametrize("kind, shown", [("bogus", "'BOGUS'"), ("grant,spend", "'SPEND'")])
def test_invalid_kind_is_400(alice, kind, shown):
    response = client_for(alice).get(URL, {"kind": kind})

    message = f"Unknown value {shown}; one of {KINDS}."
    assert response.status_code == 400
    assert response.json() == {"detail": f"kind: {message}", "errors": {"kind": [message]}}


def test_pages_follow_a_cursor(alice, staff, django_assert_num_queries):
    for i in range(3):
        credits_adjust(alice, Decimal(i + 1), f"gift {i}", staff, key=f"adjustment:{i}")
    newest_first = rows(alice)
    client_for(alice).get(URL)  # stamps the token's last use, which waits a while after

    with django_assert_num_queries(2):  # the token and the page: no COUNT(*)
        first = client_for(alice).get(URL, {"page_size": 3}).json()
    assert first["previous"] is None
    assert first["results"] == [as_listed(e) for e in newest_first[:3]]
    assert first["next"].startswith("http://testserver/api/credits/transactions/?cursor=")
    assert "page_size=3" in first["next"]

    second = client_for(alice).get(first["next"]).json()
    assert second["next"] is None and second["previous"]
    assert second["results"] == [as_listed(newest_first[3])]
    # Rows added meanwhile do not shift a page that was already handed out.
    credits_adjust(alice, Decimal(9), "late", staff, key="adjustment:late")
    assert client_for(alice).get(first["next"]).json()["results"] == second["results"]
    back = client_for(alice).get(second["previous"]).json()
    assert back["results"] == [as_listed(e) for e in newest_first[:3]]


@pytest.mark.parametrize("cursor", ["o=-1", "p=a", "p=1.5", "p=-1", "p=" + "9" * 19])
def test_a_forged_cursor_is_404(alice, cursor):
    """A position that is not an id would reach the filter (a 500 for "p=a"), or overflow
    the column's bigint."""
    encoded = base64.b64encode(cursor.encode()).decode()

    response = client_for(alice).get(URL, {"cursor": encoded})

    assert (response.status_code, response.json()) == (404, {"detail": "Invalid cursor"})


def test_anonymous_is_401():
    response = client_for().get(URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(alice, method):
    before = LedgerEntry.objects.count()

    response = getattr(client_for(alice), method)(URL, {"kind": "grant", "amount": "1000"},
                                                  format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert LedgerEntry.objects.count() == before


def test_each_row_is_what_the_ledger_serializer_gives(alice, billed):
    """The rows come from values() (dmarket.common.serializers.ValuesSerializer), not through
    LedgerEntrySerializer: every field must come out the same."""
    from rest_framework.renderers import JSONRenderer

    from dmarket.credits.serializers import LedgerEntrySerializer

    response = client_for(alice).get(URL)
    expected = LedgerEntrySerializer(rows(alice), many=True).data
    assert response.content == JSONRenderer().render(
        {"next": None, "previous": None, "results": expected})
