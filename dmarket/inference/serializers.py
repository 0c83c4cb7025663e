from decimal import Decimal

from django.conf import settings
from rest_framework import serializers

from dmarket.common.serializers import StrictSerializer
from dmarket.credits.serializers import credits_field

from .models import InferenceJob

MAX_BATCH = 4096


class InferenceSubmitSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, default="")
    model = serializers.CharField(max_length=2000, help_text=(
        "lenet, resnet50 or inceptionv3 (optionally :SIDE, the input images' side, e.g. "
        "resnet50:64), or a .keras or .h5 model file in the file store: dmarket://NAME[@V] "
        "(or NAME[@V]), dmarket://~USER/NAME, dmarket://jobs/ID/results/PATH. Operators may "
        "give an absolute path on the server."))
    weights = serializers.CharField(max_length=2000, required=False, default="",
                                    help_text="A weights file for a built-in model, in the "
                                    "file store like a model; without one its weights are "
                                    "random.")
    data = serializers.CharField(max_length=2000, help_text=(
        "synthetic:N (N inputs of the model's input shape), or .npy, .png/.jpg or .csv "
        "inputs (one per CSV row) in the file store: dmarket://PATTERN (* and ? match; a "
        "folder means every file in it), dmarket://~USER/PATTERN, "
        "dmarket://jobs/ID/results/PATTERN. Operators may give a server path or glob."))
    batch_size = serializers.IntegerField(min_value=1, max_value=MAX_BATCH)
    max_credits = serializers.DecimalField(max_digits=20, decimal_places=6, required=False,
                                           allow_null=True, default=None,
                                           min_value=Decimal("0.000001"))

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["max_credits"] is None:
            attrs["max_credits"] = settings.DMARKET_DEFAULT_JOB_CAP
        if not attrs["name"]:
            attrs["name"] = f"inference {attrs['model']}"
        return attrs


class BatchSizeSerializer(StrictSerializer):
    batch_size = serializers.IntegerField(min_value=1, max_value=MAX_BATCH)


class InferenceJobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="user.username", read_only=True)
    # Its run's: what it is billed under.
    max_credits = credits_field(source="run.max_credits", read_only=True)
    cost = credits_field(source="run.cost", read_only=True)
    outputs = serializers.SerializerMethodField()

    class Meta:
        model = InferenceJob
        fields = ["id", "owner", "name", "model", "weights", "data", "batch_size", "status",
                  "status_reason", "cancel_requested", "input_count", "outputs",
                  "max_credits", "cost", "created_at", "started_at",
                  "finished_at", "settled_at"]
        read_only_fields = fields

    def get_outputs(self, ijob) -> int:
        return ijob.outputs.count()


class MachineRefSerializer(serializers.Serializer):
    host = serializers.CharField()
    machine = serializers.IntegerField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    status = serializers.CharField()
    batch_size = serializers.IntegerField()
    inputs = serializers.IntegerField(allow_null=True)
    count = serializers.IntegerField(help_text="Queries (inputs) processed.")
    mean_ms = serializers.FloatField(allow_null=True)
    std_ms = serializers.FloatField(allow_null=True)
    p25_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p75_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    rate_10s = serializers.FloatField(help_text="Queries per second over the last 10 s.")
    rate_total = serializers.FloatField(help_text="Queries per second since it started.")
    core_ms_per_query = serializers.FloatField(allow_null=True)
    machines = MachineRefSerializer(many=True)


class RateSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    count = serializers.IntegerField()
    rate_10s = serializers.FloatField()
    rate_total = serializers.FloatField()


class RatesSerializer(serializers.Serializer):
    jobs = RateSerializer(many=True)
    max_over_min = serializers.FloatField(allow_null=True, help_text=(
        "The largest 10 s rate over the smallest, among the running jobs."))


class OutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    output = serializers.ListField(child=serializers.FloatField())


class ClusterJobSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["job", "inference"])
    id = serializers.IntegerField()
    owner = serializers.CharField()
    cores = serializers.IntegerField(allow_null=True)


class ClusterMachineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    address = serializers.CharField()
    state = serializers.CharField()
    cores = serializers.IntegerField()
    cores_in_use = serializers.IntegerField()
    jobs = ClusterJobSerializer(many=True)
