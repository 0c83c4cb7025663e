"""Credits are an append-only ledger; an account's balance is the sum of its rows.

Every row changes two numbers of one user's account: `amount` changes the balance (what the
user owns) and `held` changes the part of it reserved for unfinished jobs. Available credits
are balance minus held. Amounts are Decimal with 6 places (micro-credits), never floats.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models

QUANTUM = Decimal("0.000001")
ZERO = Decimal("0")


def credit_field(**kwargs):
    return models.DecimalField(max_digits=20, decimal_places=6, default=ZERO, **kwargs)


class Account(models.Model):
    """The cached sums of a user's ledger rows, and the row every movement locks.

    Written only by dmarket.credits.services.ledger_post, in the same transaction as the
    ledger row, so the cache cannot drift from the ledger.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, models.CASCADE, primary_key=True,
                                related_name="account")
    balance = credit_field()
    held = credit_field()
    earned = credit_field()
    spent = credit_field()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(held__gte=0), name="account_held_gte_0"),
        ]

    def __str__(self):
        return f"{self.user} ({self.balance} credits)"

    @property
    def available(self):
        return self.balance - self.held


class Run(models.Model):
    """What one job is billed under: its credit cap (held while it runs), its prices, fixed
    when it was submitted, and what it has cost so far.

    A Spark job (jobs.Job) and an inference job (inference.InferenceJob) each own one, one to
    one: credits bills runs and knows nothing of what runs them. Their models name it `run`
    and declare their statuses (`status`, `UNFINISHED`), which is all runs_unfinished reads.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="runs")
    # What it bills, for people: "job 7", "inference job 3" (memos, the admin).
    label = models.CharField(max_length=100)
    max_credits = credit_field()
    # Fixed at submission: what one core-hour and one GPU-hour cost this run, and the
    # market's premium then.
    price_per_core_hour = credit_field()
    price_per_gpu_hour = credit_field()
    premium_rate = models.DecimalField(max_digits=8, decimal_places=4, default=1)
    # Cached sum of the run's charge rows, written in the same transaction as they are.
    cost = credit_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"run {self.pk}: {self.label}"


def run_owners():
    """The relations from Run to the models that own runs (a Spark job, an inference job):
    their one-to-one fields name them, so that credits imports none of them. Each owner has a
    `status` and declares its UNFINISHED statuses."""
    return [rel for rel in Run._meta.related_objects if rel.one_to_one]


def run_owner(run):
    """The job, of whichever kind, that owns the run, or None."""
    for rel in run_owners():
        # A missing reverse one-to-one raises an AttributeError: the default.
        owner = getattr(run, rel.get_accessor_name(), None)
        if owner is not None:
            return owner
    return None


def runs_unfinished(prefix=""):
    """A Q that holds for runs (through `prefix`, e.g. "run__") whose job, of whichever kind,
    has not finished."""
    q = models.Q(pk__in=[])
    for rel in run_owners():
        q |= models.Q(**{f"{prefix}{rel.name}__status__in": rel.related_model.UNFINISHED})
    return q


def unfinished_jobs_count():
    """Unfinished jobs of every kind: one indexed count on each owner's own table (not a scan
    of all runs)."""
    return sum(rel.related_model.objects.filter(status__in=rel.related_model.UNFINISHED)
               .count() for rel in run_owners())


class LedgerEntry(models.Model):
    GRANT = "grant"
    HOLD = "hold"
    RELEASE = "release"
    CHARGE = "charge"
    EARNING = "earning"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    KINDS = [
        (GRANT, "Sign-up grant"),
        (HOLD, "Hold"),
        (RELEASE, "Release"),
        (CHARGE, "Job charge"),
        (EARNING, "Machine earning"),
        (REFUND, "Refund"),
        (ADJUSTMENT, "Admin adjustment"),
    ]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=16, choices=KINDS)
    amount = credit_field(help_text="Change to the balance.")
    held = credit_field(help_text="Change to the held part of the balance.")
    balance_after = credit_field()
    held_after = credit_field()
    run = models.ForeignKey(Run, models.PROTECT, null=True, blank=True, related_name="ledger")
    machine = models.ForeignKey("machines.Machine", models.PROTECT, null=True, blank=True,
                                related_name="ledger")
    # Names the movement itself (e.g. "hold:run:7"), so that code which runs twice writes
    # once. Rows from before runs say "job:N": the run made for job N has its id.
    key = models.CharField(max_length=200, unique=True)
    memo = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True,
                                   blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["user", "-id"]), models.Index(fields=["run", "kind"])]

    def __str__(self):
        return f"{self.kind} {self.amount} for {self.user}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Ledger entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Ledger entries are append-only.")


class UsageRecord(models.Model):
    """What one executor, or one group of inference batches, held on one machine for one run.

    Usage is metered here as it is seen and posted to the ledger later, per run × machine, at
    most once per billing interval and at the job's end (dmarket.credits.services.usage_post),
    so that ledger rows grow with machines × time, not with executors or batches.
    """

    run = models.ForeignKey(Run, models.CASCADE, related_name="usage")
    machine = models.ForeignKey("machines.Machine", models.PROTECT, related_name="usage")
    # Names the usage within its run (a Spark executor "app-…:3", a batch group), so that
    # metering it again records nothing.
    key = models.CharField(max_length=200)
    core_ms = models.BigIntegerField()
    gpu_ms = models.BigIntegerField(default=0)
    recorded_at = models.DateTimeField(auto_now_add=True)
    # The key of the charge it was posted under; empty until posted. A posting capped to
    # nothing still stamps it, with no ledger row under that key.
    posted_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="usage_unique_key"),
        ]
        indexes = [
            # The poster's question: what of this run is not posted yet?
            models.Index(fields=["run", "machine"], condition=models.Q(posted_key=""),
                         name="usage_unposted"),
        ]

    def __str__(self):
        return f"run {self.run_id} on machine {self.machine_id}: {self.key}"
