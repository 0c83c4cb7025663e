import ipaddress
import re

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from dmarket.common.serializers import (StrictSerializer, default_machine_type,
                                        validate_machine_type)

from .models import Machine, MachineStateChange, parse_window

HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def validate_address(value):
    # Not a scoped IPv6 address ("fe80::1%eth0"): its zone id may hold any character.
    if "%" not in value:
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
    if not HOSTNAME.match(value):
        raise serializers.ValidationError(
            "Enter this machine's IP address or host name, e.g. 192.0.2.10 or node1.example.org."
        )
    return value


def machine_gpus_check(machine_type, gpus):
    """The machine's type (its default filled in) for the GPUs it offers: a cpu machine
    offers none, an accelerator's machine at least one. ValidationError on `gpus` otherwise
    (the API's 400 and the admin form's error alike)."""
    if machine_type is None:
        machine_type = default_machine_type(gpus)
    if machine_type == "cpu" and gpus:
        raise serializers.ValidationError({"gpus": [
            "A cpu machine offers no GPU: leave machine_type out (or give gpu) to offer "
            "them."]})
    if machine_type != "cpu" and not gpus:
        raise serializers.ValidationError({"gpus": [
            f"A {machine_type} machine offers at least one: give how many (gpus)."]})
    return machine_type


class MachineCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    cores = serializers.IntegerField(min_value=1, max_value=4096)
    memory_mb = serializers.IntegerField(min_value=1, max_value=64 * 1024 * 1024)
    machine_type = serializers.CharField(
        max_length=32, required=False, default=None, validators=[validate_machine_type],
        help_text="cpu, or the accelerator it offers (gpu: the default when gpus is given).")
    gpus = serializers.IntegerField(
        min_value=0, default=0,
        help_text="GPUs (of its machine type's resource) it offers; its worker holds that many.")
    address = serializers.CharField(max_length=255, validators=[validate_address])
    sharing_window = serializers.CharField(max_length=11, required=False, allow_blank=True,
                                           allow_null=True, default="")
    share_until = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_sharing_window(self, value):
        if not value:
            return ""
        try:
            parse_window(value)
        except ValueError as e:
            raise serializers.ValidationError(str(e)) from None
        return value

    def validate_gpus(self, value):
        if value > settings.DMARKET_MAX_GPUS:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.DMARKET_MAX_GPUS}.")
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["machine_type"] = machine_gpus_check(attrs.get("machine_type"),
                                                   attrs.get("gpus", 0))
        return attrs

    def validate_share_until(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("share_until must be in the future.")
        return value


class MachineSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="user.username", read_only=True)
    earned = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True,
                                      default=0)

    class Meta:
        model = Machine
        fields = ["id", "owner", "name", "cores", "memory_mb", "machine_type", "gpus", "address",
                  "sharing_window", "share_until", "state", "worker_id", "worker_state",
                  "last_heartbeat", "cores_in_use", "python", "platform", "earned",
                  "created_at", "removed_at"]


class SparkSecuritySerializer(serializers.Serializer):
    """What a machine's worker needs to join the closed cluster (only its agent sees it)."""
    spark_secret = serializers.CharField(
        help_text="The Spark cluster's shared secret (spark.authenticate), for the worker "
                  "(_SPARK_AUTH_SECRET); empty when the cluster runs without authentication.")
    spark_conf = serializers.DictField(
        child=serializers.CharField(),
        help_text="Spark properties the worker must run with (-D options), none secret.")


INTERVAL_HELP = ("Seconds until the agent's next heartbeat; longer than the market's setting "
                 "while more machines beat than it hears a second.")
TIMEOUT_HELP = "Seconds of silence after which the machine counts as offline."


class AgentSettingsSerializer(SparkSecuritySerializer):
    master_url = serializers.CharField()
    heartbeat_interval = serializers.IntegerField(help_text=INTERVAL_HELP)
    heartbeat_timeout = serializers.IntegerField(help_text=TIMEOUT_HELP)
    executor_env = serializers.DictField(child=serializers.CharField(),
                                         help_text="Environment for the worker's executors.")


class MachineStateChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = MachineStateChange
        fields = ["state", "reason", "created_at"]


class MachineRegisteredSerializer(MachineSerializer):
    agent = AgentSettingsSerializer(read_only=True)
    token = serializers.CharField(
        read_only=True, help_text="The machine token, for its agent (shown only here): good "
                                  "for this machine's heartbeat and details only, revoked when "
                                  "the machine is removed.")

    class Meta(MachineSerializer.Meta):
        fields = MachineSerializer.Meta.fields + ["agent", "token"]


class HeartbeatSerializer(StrictSerializer):
    worker_state = serializers.CharField(max_length=32, required=False, allow_blank=True,
                                         default="")
    worker_id = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                      default="")
    python = serializers.RegexField(r"^[0-9]{1,2}\.[0-9]{1,3}$", max_length=16, required=False,
                                    allow_blank=True, default="",
                                    help_text="The Python its executors run, e.g. 3.11.")
    platform = serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}$", max_length=64, required=False,
                                      allow_blank=True, default="",
                                      help_text="Its platform, e.g. linux-x86_64.")


class HeartbeatReplySerializer(SparkSecuritySerializer):
    state = serializers.CharField()
    heartbeat_interval = serializers.IntegerField(help_text=INTERVAL_HELP)
    heartbeat_timeout = serializers.IntegerField(help_text=TIMEOUT_HELP)
