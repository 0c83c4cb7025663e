from rest_framework import serializers

from .models import LedgerEntry



def credits_field(**kwargs):
    return serializers.DecimalField(max_digits=20, decimal_places=6, **kwargs)


class CreditsSerializer(serializers.Serializer):
    balance = credits_field(help_text="Credits owned: grants, earnings and refunds less charges.")
    held = credits_field(help_text="Part of the balance reserved for unfinished jobs.")
    available = credits_field(help_text="Balance less held: what new jobs can reserve.")
    earned = credits_field(help_text="Earned by this user's machines, all time.")
    spent = credits_field(help_text="Charged for this user's jobs, all time.")


class LedgerEntrySerializer(serializers.ModelSerializer):
    # What the run it moves credits for belongs to: a job, or an inference job.
    job = serializers.IntegerField(source="run.job.id", read_only=True, default=None)
    inference_job = serializers.IntegerField(source="run.inference.id", read_only=True,
                                             default=None)

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "amount", "held", "balance_after", "held_after", "run", "job",
                  "inference_job", "machine", "memo", "created_at"]


class PricesSerializer(serializers.Serializer):
    unit = serializers.CharField()
    resources = serializers.DictField(
        child=credits_field(), help_text="Credits per hour of one core, one GPU...")
    machine_types = serializers.ListField(
        child=serializers.CharField(),
        help_text="cpu (cores only) and each accelerator: the resource its jobs ask for.")
    premium_rate = serializers.DecimalField(max_digits=8, decimal_places=4)
    unfinished_jobs = serializers.IntegerField()
    online_machines = serializers.IntegerField()
    effective = serializers.DictField(
        child=credits_field(), help_text="What a job submitted now pays per hour of each "
                                         "resource, its own submission's premium included.")
    default_job_cap = credits_field()
    signup_grant = credits_field()
