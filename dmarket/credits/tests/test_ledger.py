"""dmarket.credits.services: the ledger, pricing, and billing a job's usage."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from dmarket.credits.models import Account, LedgerEntry
from dmarket.credits.services import (InsufficientCredits, Usage, run_bill_usage, run_hold,
                                      run_release, ledger_post, premium_rate, usage_cost)
from dmarket.jobs.models import Job
from dmarket.jobs.services import job_submit
from dmarket.machines.models import Machine
from dmarket.jobs.tests.factories import make_job as job_create

D = Decimal


def account(user):
    a = Account.objects.get(user=user)
    return {"balance": a.balance, "held": a.held, "available": a.available, "earned": a.earned,
            "spent": a.spent}


def money(balance, held="0", earned="0", spent="0"):
    return {"balance": D(balance), "held": D(held), "available": D(balance) - D(held),
            "earned": D(earned), "spent": D(spent)}


def make_job(user, max_credits="10", price="1", premium="1"):
    job = job_create(user=user, name="train", entry_file="/tmp/app.py",
                     max_credits=D(max_credits), price_per_core_hour=D(price),
                     premium_rate=D(premium))
    run_hold(job.run, job.run.label)
    return job


def make_machine(user, state=Machine.ONLINE, gpus=0):
    return Machine.objects.create(user=user, cores=4, memory_mb=8192, address="192.0.2.10",
                                  state=state, gpus=gpus,
                                  machine_type="gpu" if gpus else "cpu")


def ledger_total(kind):
    return LedgerEntry.objects.filter(kind=kind).aggregate(s=Sum("amount"))["s"] or D(0)


# --- ledger_post ----------------------------------------------------------------------------

def test_ledger_post_writes_a_row_and_updates_the_account(alice):
    entry, created = ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("5.25"),
                                 memo="gift")

    assert created is True
    assert (entry.amount, entry.held, entry.balance_after, entry.held_after) == (
        D("5.25"), D("0"), D("105.25"), D("0"))
    assert account(alice) == money("105.25")


def test_ledger_post_is_idempotent_per_key(alice):
    first, first_created = ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("5"))
    again, again_created = ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("5"))

    assert (first_created, again_created) == (True, False)
    assert again.pk == first.pk
    assert LedgerEntry.objects.filter(key="k1").count() == 1
    assert account(alice) == money("105")


def test_a_key_once_used_cannot_post_a_different_movement(alice):
    ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("5"))

    entry, created = ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("500"))

    assert created is False
    assert entry.amount == D("5")
    assert account(alice) == money("105")


def test_amounts_are_rounded_to_micro_credits(alice):
    entry, _ = ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("0.0000015"))

    assert entry.amount == D("0.000002")
    assert account(alice) == money("100.000002")


def test_held_cannot_go_negative(alice):
    before = LedgerEntry.objects.count()

    with pytest.raises(ValueError):
        ledger_post(alice, LedgerEntry.RELEASE, "k1", held=D("-0.000001"))

    assert LedgerEntry.objects.count() == before
    assert account(alice) == money("100")


def test_a_hold_the_available_balance_cannot_cover_is_refused(alice):
    ledger_post(alice, LedgerEntry.HOLD, "first", held=D("60"))
    before = LedgerEntry.objects.count()

    with pytest.raises(InsufficientCredits) as excinfo:
        ledger_post(alice, LedgerEntry.HOLD, "second", held=D("40.000001"))

    assert (excinfo.value.needed, excinfo.value.available) == (D("40.000001"), D("40"))
    assert LedgerEntry.objects.count() == before
    assert account(alice) == money("100", held="60")


def test_a_hold_of_exactly_the_available_balance_is_allowed(alice):
    ledger_post(alice, LedgerEntry.HOLD, "k1", held=D("100"))

    assert account(alice) == money("100", held="100")


def test_a_negative_adjustment_cannot_overdraw(alice):
    with pytest.raises(InsufficientCredits):
        ledger_post(alice, LedgerEntry.ADJUSTMENT, "k1", amount=D("-100.000001"))

    assert account(alice) == money("100")


def test_posting_creates_a_missing_account(settings, make_user):
    settings.DMARKET_SIGNUP_GRANT = D("0")
    dave = make_user("dave")
    assert not Account.objects.filter(user=dave).exists()

    ledger_post(dave, LedgerEntry.GRANT, "k1", amount=D("3"))

    assert account(dave) == money("3")


# --- Pricing --------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs, machines, rate", [
    (0, 0, "1.0000"),
    (0, 5, "1.0000"),
    (3, 3, "1.0000"),
    (2, 5, "1.0000"),
    (3, 2, "1.5000"),
    (4, 3, "1.3333"),
    (5, 3, "1.6667"),
    (2, 1, "2.0000"),
    (5, 2, "2.0000"),
    (1000, 1, "2.0000"),
    (1, 0, "2.0000"),
])
def test_premium_rate(jobs, machines, rate):
    result = premium_rate(jobs, machines)

    assert result == D(rate)
    assert str(result) == rate


def test_premium_rate_cap_comes_from_settings(settings):
    settings.DMARKET_PREMIUM_CAP = D("3")

    assert str(premium_rate(5, 2)) == "2.5000"
    assert str(premium_rate(7, 2)) == "3.0000"
    assert str(premium_rate(1, 0)) == "3.0000"


@pytest.mark.parametrize("core_ms, price, premium, cost", [
    (3_600_000, "1", "1", "1.000000"),
    (1, "1", "1", "0.000000"),
    (2, "1", "1", "0.000001"),             # 0.00000056 rounds up
    (1800, "1", "2", "0.001000"),
    (18, "0.1", "1", "0.000001"),          # exactly half a micro-credit: half-up, not even
    (54, "0.1", "1", "0.000002"),          # 1.5 micro-credits: half-up, not even (which is 2 too)
    (90, "0.1", "1", "0.000003"),          # 2.5 micro-credits: half-even would give 2
    (3_600_000, "4", "1.5", "6.000000"),
    (1_000_000, "1", "1.3333", "0.370361"),
    (10 ** 12, "4", "2", "2222222.222222"),
    (0, "4", "2", "0.000000"),
])
def test_usage_cost(core_ms, price, premium, cost):
    result = usage_cost(core_ms, D(price), D(premium))

    assert isinstance(result, Decimal)
    assert str(result) == cost


@pytest.mark.parametrize("core_ms, gpu_ms, core_price, gpu_price, premium, cost", [
    (3_600_000, 3_600_000, "1", "4", "1", "5.000000"),
    (0, 3_600_000, "1", "4", "1.5", "6.000000"),
    (7_200_000, 1_800_000, "0.5", "10", "2", "12.000000"),
    # Rounded once over the sum: 0.4 + 0.4 micro-credits is 1, not 0 + 0.
    (1, 1, "1.44", "1.44", "1", "0.000001"),
    (3, 0, "1", "4", "1", "0.000001"),
])
def test_usage_cost_of_cores_and_gpus(core_ms, gpu_ms, core_price, gpu_price, premium, cost):
    result = usage_cost(core_ms, D(core_price), D(premium), gpu_ms, D(gpu_price))

    assert str(result) == cost


def test_a_gpu_executor_is_charged_its_cores_and_gpus_and_its_machine_earns_the_same(
        alice, bob, entry_file):
    machine = make_machine(bob, gpus=2)
    fields = {"name": "train", "entry_file": entry_file, "libs": [], "archives": [],
              "app_params": [], "cores": 2, "executor_memory_mb": 1024, "machine_type": "gpu",
              "gpus_per_executor": 2, "gpus_per_task": 1.0, "max_credits": D("50"),
              "submission_id": None}
    job, _ = job_submit(alice, fields)

    # 2 cores and 2 GPUs for half an hour, at 1 and 4 credits an hour (premium 1).
    charged = run_bill_usage(job.run, [Usage("app-1:0", machine, 3_600_000, 3_600_000)])
    again = run_bill_usage(job.run, [Usage("app-1:0", machine, 3_600_000, 3_600_000)])

    assert (charged, again) == (D("5"), D("0"))
    assert account(alice) == money("95", held="45", spent="5")
    assert account(bob) == money("105", earned="5")
    charge = LedgerEntry.objects.get(kind=LedgerEntry.CHARGE)
    assert charge.memo == (f"job {job.pk} on machine {machine.pk}: usage app-1:0, "
                           "3600000 core-ms, 3600000 GPU-ms")


# --- Billing a job --------------------------------------------------------------------------

def test_billing_charges_the_owner_and_pays_machine_owners_in_proportion(alice, bob, make_user):
    carol = make_user("carol")
    job = make_job(alice)
    bobs, carols = make_machine(bob), make_machine(carol)

    charged = run_bill_usage(job.run, [Usage("1", bobs, 3_600_000), Usage("2", carols, 1_800_000)])

    assert charged == D("1.5")
    assert account(alice) == money("98.5", held="8.5", spent="1.5")
    assert account(bob) == money("101", earned="1")
    assert account(carol) == money("100.5", earned="0.5")
    job.refresh_from_db()
    assert job.run.cost == D("1.5")
    charges = LedgerEntry.objects.filter(kind=LedgerEntry.CHARGE).order_by("id")
    earnings = LedgerEntry.objects.filter(kind=LedgerEntry.EARNING).order_by("id")
    assert [(e.user, e.amount, e.held, e.run, e.machine) for e in charges] == [
        (alice, D("-1"), D("-1"), job.run, bobs),
        (alice, D("-0.5"), D("-0.5"), job.run, carols)]
    assert [(e.user, e.amount, e.held, e.run, e.machine) for e in earnings] == [
        (bob, D("1"), D("0"), job.run, bobs), (carol, D("0.5"), D("0"), job.run, carols)]


def test_billing_uses_the_jobs_own_price_and_premium(alice, bob):
    job = make_job(alice, price="4", premium="1.5")

    charged = run_bill_usage(job.run, [Usage("1", make_machine(bob), 600_000)])

    assert charged == D("1")
    assert account(bob) == money("101", earned="1")


def test_a_charge_draws_on_the_hold_first(alice, bob):
    job = make_job(alice)
    assert account(alice)["available"] == D("90")

    run_bill_usage(job.run, [Usage("1", make_machine(bob), 3 * 3_600_000)])

    # Paid from what was held for the job: the credits free for other jobs do not change.
    assert account(alice) == money("97", held="7", spent="3")
    assert account(alice)["available"] == D("90")


def test_billing_never_charges_past_the_jobs_cap(alice, bob):
    job = make_job(alice, max_credits="1")
    machine = make_machine(bob)

    charged = run_bill_usage(job.run, [Usage("1", machine, 2 * 3_600_000),
                                   Usage("2", machine, 3_600_000)])

    assert charged == D("1")
    job.refresh_from_db()
    assert job.run.cost == D("1")
    assert LedgerEntry.objects.filter(run=job.run, kind=LedgerEntry.CHARGE).count() == 1
    assert account(alice) == money("99", spent="1")
    assert account(bob) == money("101", earned="1")


def test_the_usage_that_reaches_the_cap_is_billed_up_to_it(alice, bob):
    job = make_job(alice, max_credits="1.25")
    machine = make_machine(bob)

    run_bill_usage(job.run, [Usage("1", machine, 3_600_000)])
    run_bill_usage(job.run, [Usage("2", machine, 3_600_000)])

    job.refresh_from_db()
    assert job.run.cost == D("1.25")
    amounts = list(LedgerEntry.objects.filter(run=job.run, kind=LedgerEntry.CHARGE)
                   .order_by("id").values_list("amount", flat=True))
    assert amounts == [D("-1"), D("-0.25")]


def test_billing_the_same_usages_twice_writes_nothing_new(alice, bob):
    job = make_job(alice)
    machine = make_machine(bob)
    usages = [Usage("1", machine, 3_600_000), Usage("2", machine, 1_800_000)]
    run_bill_usage(job.run, usages)
    rows = LedgerEntry.objects.count()
    after_first = (account(alice), account(bob))

    charged = run_bill_usage(job.run, usages)
    # The key names the executor: a later, larger report for it is not billed again either.
    charged += run_bill_usage(job.run, [Usage("1", machine, 9 * 3_600_000)])

    assert charged == D("0")
    assert LedgerEntry.objects.count() == rows
    assert (account(alice), account(bob)) == after_first
    job.refresh_from_db()
    assert job.run.cost == D("1.5")


def test_usages_of_no_time_are_skipped(alice, bob):
    job = make_job(alice)
    machine = make_machine(bob)
    rows = LedgerEntry.objects.count()

    charged = run_bill_usage(job.run, [Usage("1", machine, 0), Usage("2", machine, -5)])

    assert charged == D("0")
    assert LedgerEntry.objects.count() == rows


def test_a_usage_worth_less_than_a_micro_credit_writes_nothing(alice, bob):
    job = make_job(alice)
    rows = LedgerEntry.objects.count()

    charged = run_bill_usage(job.run, [Usage("1", make_machine(bob), 1)])

    assert charged == D("0")
    assert LedgerEntry.objects.count() == rows


def test_a_job_on_its_owners_own_machine(alice):
    job = make_job(alice)

    run_bill_usage(job.run, [Usage("1", make_machine(alice), 3_600_000)])

    assert account(alice) == money("100", held="9", earned="1", spent="1")


def test_release_returns_the_rest_of_the_hold(alice, bob):
    job = make_job(alice)
    run_bill_usage(job.run, [Usage("1", make_machine(bob), 1_800_000)])

    entry, created = run_release(job.run)

    assert created is True
    assert (entry.kind, entry.amount, entry.held) == ("release", D("0"), D("-9.5"))
    assert account(alice) == money("99.5", spent="0.5")


def test_release_twice_writes_one_row(alice):
    job = make_job(alice)
    run_release(job.run)

    entry, created = run_release(job.run)

    assert (entry, created) == (None, False)
    assert LedgerEntry.objects.filter(run=job.run, kind=LedgerEntry.RELEASE).count() == 1
    assert account(alice) == money("100")


def test_after_billing_and_release_nothing_is_held_and_the_books_balance(alice, bob, make_user):
    carol = make_user("carol")
    first, second = make_job(alice, max_credits="2"), make_job(bob, max_credits="5")
    bobs, carols = make_machine(bob), make_machine(carol)

    run_bill_usage(first.run, [Usage("a", bobs, 3_600_000), Usage("b", carols, 7_200_000)])
    run_bill_usage(second.run, [Usage("a", carols, 1_234_567), Usage("b", bobs, 89)])
    run_release(first.run)
    run_release(second.run)

    assert account(alice)["held"] == account(bob)["held"] == D("0")
    assert ledger_total(LedgerEntry.EARNING) == -ledger_total(LedgerEntry.CHARGE)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.run.cost == D("2")
    assert second.run.cost == D("0.342960")  # 0.342935 + 0.000025
    assert ledger_total(LedgerEntry.EARNING) == first.run.cost + second.run.cost


def test_usage_billed_after_release_is_still_capped(alice, bob):
    # The launcher may report an executor's time only after the job finished and released.
    job = make_job(alice, max_credits="1")
    run_release(job.run)

    charged = run_bill_usage(job.run, [Usage("late", make_machine(bob), 5 * 3_600_000)])

    assert charged == D("1")
    assert account(alice) == money("99", spent="1")


def test_submitted_job_holds_its_cap_at_the_market_premium(alice, bob, entry_file):
    make_machine(bob)
    make_machine(bob, gpus=1)
    fields = {"name": "train", "entry_file": entry_file, "libs": [], "archives": [],
              "app_params": [], "cores": 2, "executor_memory_mb": 1024, "machine_type": "gpu",
              "gpus_per_executor": 1, "gpus_per_task": 1.0,
              "max_credits": D("12"), "submission_id": None}

    job, created = job_submit(alice, fields)

    assert created is True
    assert (job.run.price_per_core_hour, job.run.price_per_gpu_hour, job.run.premium_rate) == (
        D("1"), D("4"), D("1"))
    assert account(alice) == money("100", held="12")
    run_bill_usage(job.run, [Usage("1", make_machine(bob), 3_600_000, 3_600_000)])
    assert account(bob) == money("105", earned="5")


def test_submit_beyond_available_credits_writes_nothing(alice, entry_file):
    fields = {"name": "train", "entry_file": entry_file, "libs": [], "archives": [],
              "app_params": [], "cores": 1, "executor_memory_mb": 1024, "machine_type": "cpu",
              "max_credits": D("100.000001"), "submission_id": None}
    rows = LedgerEntry.objects.count()

    with pytest.raises(InsufficientCredits):
        job_submit(alice, fields)

    assert Job.objects.count() == 0
    assert LedgerEntry.objects.count() == rows
