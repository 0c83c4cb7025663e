"""Every credit movement goes through ledger_post; pricing turns usage into ledger rows."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from .models import QUANTUM, ZERO, Account, LedgerEntry, Run, UsageRecord


class InsufficientCredits(Exception):
    def __init__(self, needed, available):
        self.needed = needed
        self.available = available
        super().__init__(f"{needed} credits needed, {available} available")


def account_lock(user):
    """Lock the user's account row for the rest of the transaction (create it if missing)."""
    Account.objects.get_or_create(user=user)
    return Account.objects.select_for_update().get(user=user)


def ledger_post(user, kind, key, amount=ZERO, held=ZERO, run=None, machine=None, memo="",
                created_by=None, allow_overdraft=False):
    """Write one ledger row and update the cached account, once per key.

    Returns (entry, created). A second call with the same key returns the first row and
    changes nothing, however the two calls interleave: the account lock serialises them.
    Raises InsufficientCredits when the row would make available credits negative (unless
    allow_overdraft) and ValueError when it would make held credits negative.
    """
    amount = Decimal(amount).quantize(QUANTUM)
    held = Decimal(held).quantize(QUANTUM)
    with transaction.atomic():
        account = account_lock(user)
        existing = LedgerEntry.objects.filter(key=key).first()
        if existing is not None:
            return existing, False
        balance_after = account.balance + amount
        held_after = account.held + held
        if held_after < 0:
            raise ValueError(f"{key}: held credits would become {held_after}")
        if balance_after - held_after < 0 and amount - held < 0 and not allow_overdraft:
            raise InsufficientCredits(held - amount, account.available)
        entry = LedgerEntry.objects.create(
            user=user, kind=kind, amount=amount, held=held, balance_after=balance_after,
            held_after=held_after, run=run, machine=machine, key=key, memo=memo[:500],
            created_by=created_by,
        )
        account.balance = balance_after
        account.held = held_after
        update_fields = ["balance", "held", "updated_at"]
        if kind == LedgerEntry.EARNING:
            account.earned += amount
            update_fields.append("earned")
        elif kind == LedgerEntry.CHARGE:
            account.spent -= amount
            update_fields.append("spent")
        account.save(update_fields=update_fields)
        return entry, True


def credits_grant(user, amount, key, memo="", created_by=None):
    return ledger_post(user, LedgerEntry.GRANT, key, amount=amount, memo=memo,
                       created_by=created_by)


def credits_adjust(user, amount, memo, created_by, key):
    """An operator's grant (positive) or correction (negative); never below available 0."""
    return ledger_post(user, LedgerEntry.ADJUSTMENT, key, amount=amount, memo=memo,
                       created_by=created_by)


# --- Pricing ----------------------------------------------------------------------------------

def premium_rate(unfinished_jobs, online_machines):
    """The seed's premium: 1 while jobs <= machines, jobs/machines above, capped."""
    cap = settings.DMARKET_PREMIUM_CAP
    if unfinished_jobs <= online_machines:
        return Decimal("1.0000")
    if online_machines == 0:
        return cap.quantize(Decimal("0.0001"))
    rate = Decimal(unfinished_jobs) / Decimal(online_machines)
    return min(rate, cap).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def resource_prices():
    """Credits per hour of one unit of each resource: "core" and each accelerator ("gpu")."""
    prices = dict(settings.DMARKET_PRICES)
    # A test or an old configuration may still name the core price "cpu".
    core = prices.pop("core", None)
    legacy = prices.pop("cpu", None)
    return {"core": core if core is not None else legacy if legacy is not None
            else Decimal("1"), **prices}


def billed_accelerator(machine_type):
    """The accelerator (Spark resource) a job of this machine type is billed for: its own, or
    for a cpu job GPUs, which it asks for none of but which its driver may ask Spark for
    itself: what its executors held is billed all the same."""
    return machine_type if machine_type != "cpu" else "gpu"


def job_prices(machine_type):
    """(price per core-hour, price per accelerator-hour) for a job of this machine type."""
    prices = resource_prices()
    return prices["core"], prices.get(billed_accelerator(machine_type), ZERO)


def usage_cost(core_ms, price_per_core_hour, premium, gpu_ms=0, price_per_gpu_hour=ZERO):
    """Credits for core_ms core-milliseconds and gpu_ms GPU-milliseconds, rounded half-up to
    the micro-credit once, over their sum."""
    cost = ((Decimal(core_ms) * price_per_core_hour + Decimal(gpu_ms) * price_per_gpu_hour)
            * premium / Decimal(3_600_000))
    return cost.quantize(QUANTUM, rounding=ROUND_HALF_UP)


# --- Runs -------------------------------------------------------------------------------------

def run_open(user, max_credits, machine_type, premium):
    """A new run of the user's, its prices those of the machine type now. Its job, once
    created, names it and holds its cap (run_hold)."""
    core_price, gpu_price = job_prices(machine_type)
    return Run.objects.create(user=user, max_credits=max_credits,
                              price_per_core_hour=core_price, price_per_gpu_hour=gpu_price,
                              premium_rate=premium)


def run_hold_remaining(run):
    held = LedgerEntry.objects.filter(run=run, user_id=run.user_id).aggregate(s=Sum("held"))["s"]
    return held or ZERO


def run_hold(run, label):
    """Name the run after its job ("job 7") and reserve its credit cap. Raises
    InsufficientCredits when available credits cannot cover it: call it inside the
    transaction that creates the run and its job, so that nothing is written then."""
    run.label = label[:100]
    run.save(update_fields=["label"])
    return ledger_post(run.user, LedgerEntry.HOLD, f"hold:run:{run.pk}", held=run.max_credits,
                       run=run, memo=f"hold for {run.label}")


def run_release(run):
    """Return whatever is still held for the run to the owner's available credits."""
    with transaction.atomic():
        account_lock(run.user)
        remaining = run_hold_remaining(run)
        if remaining <= 0:
            return None, False
        return ledger_post(run.user, LedgerEntry.RELEASE, f"release:run:{run.pk}",
                           held=-remaining, run=run, memo=f"release of {run.label}'s hold")


@dataclass(frozen=True)
class Usage:
    """Core-time (and GPU-time) one executor, or one group of batches, held on one machine.
    `key` names it within the run (e.g. the Spark executor id), so that metering it again
    records nothing."""

    key: str
    machine: object
    core_ms: int
    gpu_ms: int = 0


def usage_record(run, usages):
    """Meter usages for the run: one UsageRecord per key, however often the same key comes."""
    UsageRecord.objects.bulk_create(
        [UsageRecord(run_id=run.pk, machine_id=usage.machine.pk, key=usage.key,
                     core_ms=max(usage.core_ms, 0), gpu_ms=max(usage.gpu_ms, 0))
         for usage in usages if usage.core_ms > 0 or usage.gpu_ms > 0],
        ignore_conflicts=True)


def usage_pending_cost(run):
    """What the run's metered usage not yet posted to the ledger will cost (before its cap)."""
    pending = UsageRecord.objects.filter(run=run, posted_key="").aggregate(
        core=Sum("core_ms"), gpu=Sum("gpu_ms"))
    return usage_cost(pending["core"] or 0, run.price_per_core_hour, run.premium_rate,
                      pending["gpu"] or 0, run.price_per_gpu_hour)


def run_over_cap(run, running_cost=ZERO):
    """Whether what the run has cost, what is metered and not posted yet, and `running_cost`
    (what is running now) reach its cap."""
    return run.cost + usage_pending_cost(run) + running_cost >= run.max_credits


def usage_post(run, final=True, now=None):
    """Post the run's metered usage: per machine, one charge to the run's owner and one
    earning to the machine's owner for all its usage not posted yet.

    A machine's usage is posted once its oldest unposted record is DMARKET_BILLING_INTERVAL
    seconds old, or at once when final (the run's end). Returns the credits newly charged.
    """
    due = UsageRecord.objects.filter(run=run, posted_key="")
    if not final:
        now = now or timezone.now()
        due = due.filter(recorded_at__lte=now - timedelta(
            seconds=settings.DMARKET_BILLING_INTERVAL))
    charged = ZERO
    for machine_id in sorted(set(due.values_list("machine_id", flat=True))):
        charged += usage_post_machine(run, machine_id)
    return charged


def usage_post_machine(run, machine_id):
    """Post the run's unposted usage on one machine, in one transaction (see usage_post).

    A charge draws first on the run's hold. The run's total charge never passes its cap: the
    posting that reaches the cap is charged only up to it. Its key names the first usage record
    it posts, and the records are stamped with it in the same transaction: posting twice, or
    from two processes at once, posts each record once.
    """
    first = (UsageRecord.objects.filter(run=run, machine_id=machine_id)
             .select_related("machine__user").first())
    if first is None:
        return ZERO
    machine = first.machine
    with transaction.atomic():
        # Both accounts, always in user-id order, so that two posters cannot deadlock.
        for user_id in sorted({run.user_id, machine.user_id}):
            account_lock(run.user if user_id == run.user_id else machine.user)
        locked = Run.objects.select_for_update().get(pk=run.pk)
        rows = list(UsageRecord.objects.select_for_update()
                    .filter(run=run, machine_id=machine_id, posted_key="")
                    .order_by("id").values_list("id", "core_ms", "gpu_ms", "key"))
        if not rows:
            return ZERO
        ids = [row[0] for row in rows]
        core_ms = sum(row[1] for row in rows)
        gpu_ms = sum(row[2] for row in rows)
        key = f"run:{run.pk}:machine:{machine_id}:usage:{ids[0]}"
        UsageRecord.objects.filter(pk__in=ids).update(posted_key=f"charge:{key}")
        cost = usage_cost(core_ms, locked.price_per_core_hour, locked.premium_rate,
                          gpu_ms, locked.price_per_gpu_hour)
        cost = min(cost, locked.max_credits - locked.cost)
        if cost <= 0:
            return ZERO
        from_hold = min(cost, run_hold_remaining(locked))
        what = f"usage {rows[0][3]}" if len(rows) == 1 else f"{len(rows)} usage records"
        memo = f"{locked.label} on machine {machine_id}: {what}, {core_ms} core-ms"
        if gpu_ms:
            memo += f", {gpu_ms} GPU-ms"
        ledger_post(run.user, LedgerEntry.CHARGE, f"charge:{key}", amount=-cost,
                    held=-from_hold, run=locked, machine=machine, memo=memo,
                    allow_overdraft=True)
        ledger_post(machine.user, LedgerEntry.EARNING, f"earning:{key}", amount=cost,
                    run=locked, machine=machine, memo=memo)
        locked.cost += cost
        locked.save(update_fields=["cost"])
        run.cost = locked.cost
        return cost


def run_bill_usage(run, usages, final=True):
    """Meter the usages and post the run's usage to the ledger (see usage_post): all of it when
    final, else only what is a billing interval old. Returns the credits newly charged."""
    usage_record(run, usages)
    return usage_post(run, final=final)
