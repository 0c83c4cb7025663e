import hashlib
import json
import math
import re
import shlex
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dmarket.common.serializers import (StrictSerializer, default_machine_type,
                                        validate_machine_type)
from dmarket.credits.models import QUANTUM
from dmarket.credits.serializers import credits_field
from dmarket.envs.services import BadRequirements, requirements_normalize

from .conf import BadConf, conf_check
from .models import Job
from .uris import BadURI, check_uri, entry_is_jar

MAX_PARAMS = 1000
MAX_PARAM_LENGTH = 10000
SUBMISSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JAVA_CLASS = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "string"}},
                                {"type": "string"}]})
class AppParamsField(serializers.Field):
    """A list of strings, or one string split the way a POSIX shell splits words (but never
    given to a shell: no expansion, no substitution)."""

    default_error_messages = {
        "type": "Give a list of strings, or one string to be split shell-style.",
        "split": "Could not split the string shell-style: {error}.",
        "item": "Item {index} is not a string.",
        "nul": "Item {index} contains a NUL character, which no argument can hold.",
        "long": "Item {index} is longer than {limit} characters.",
        "many": "At most {limit} parameters.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = shlex.split(data)
            except ValueError as e:
                self.fail("split", error=str(e).lower())
        elif not isinstance(data, list):
            self.fail("type")
        if len(data) > MAX_PARAMS:
            self.fail("many", limit=MAX_PARAMS)
        for index, item in enumerate(data):
            if not isinstance(item, str):
                self.fail("item", index=index)
            if "\x00" in item:
                self.fail("nul", index=index)
            if len(item) > MAX_PARAM_LENGTH:
                self.fail("long", index=index, limit=MAX_PARAM_LENGTH)
        return data

    def to_representation(self, value):
        return value


def uri_validator(role):
    def validate(value, field):
        try:
            # Server paths only for an operator: the view gives the submitter as "user".
            check_uri(value, role, field.context.get("user"))
        except BadURI as e:
            raise serializers.ValidationError(str(e)) from None
    validate.requires_context = True
    return validate


def dmarket_uri_validator(role, extensions):
    """A file the server itself reads (it unpacks it for the driver): dmarket:// only."""
    def validate(value):
        if not value:
            return
        if not value.startswith("dmarket://"):
            raise serializers.ValidationError(
                f"{value!r}: give a dmarket:// file (dmarket files put, or let dmarket jobs "
                "submit upload it).")
        base = value.split("@", 1)[0]
        if not base.lower().endswith(extensions):
            raise serializers.ValidationError(
                f"{value!r}: a {role} file must end in {' or '.join(extensions)}.")
    return validate


class JobSubmitSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    entry_file = serializers.CharField(max_length=2000, trim_whitespace=False,
                                       validators=[uri_validator("entry_file")])
    libs = serializers.ListField(
        child=serializers.CharField(max_length=2000, trim_whitespace=False,
                                    validators=[uri_validator("libs")]),
        max_length=100, required=False, default=list)
    archives = serializers.ListField(
        child=serializers.CharField(max_length=2000, trim_whitespace=False,
                                    validators=[uri_validator("archives")]),
        max_length=100, required=False, default=list)
    files = serializers.ListField(
        child=serializers.CharField(max_length=2000, trim_whitespace=False,
                                    validators=[uri_validator("files")]),
        max_length=100, required=False, default=list)
    app_params = AppParamsField(required=False, default=list)
    conf = serializers.DictField(
        child=serializers.CharField(max_length=1000, trim_whitespace=False, allow_blank=True),
        required=False, default=dict,
        help_text="Spark properties of the job's own, from the allowlist in doc/spark.md.")
    main_class = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="",
        help_text="A JAR entry file's main class (spark-submit --class).")
    requirements = serializers.CharField(
        max_length=100000, required=False, allow_blank=True, default="", trim_whitespace=False,
        help_text="A requirements.txt: the job runs in an environment with these packages.")
    env = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False,
        validators=[dmarket_uri_validator("env", (".tar.gz", ".tgz"))],
        help_text="A packed environment in the store (dmarket://NAME, from dmarket env build).")
    working_dir = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False,
        validators=[dmarket_uri_validator("working_dir", (".zip",))],
        help_text="A zip in the store (dmarket://NAME.zip): the driver's and executors' "
                  "working directory, on their sys.path.")
    cores = serializers.IntegerField(min_value=1, default=1)
    executor_memory_mb = serializers.IntegerField(min_value=512, default=1024)
    driver_memory_mb = serializers.IntegerField(min_value=512, required=False, allow_null=True,
                                                default=None)
    max_runtime = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                           default=None, help_text="Seconds the job may run.")
    machine_type = serializers.CharField(
        max_length=32, required=False, default=None, validators=[validate_machine_type],
        help_text="Where it may run: cpu (default; its executors hold no GPU) or an "
                  "accelerator type such as gpu (the default when gpus_per_executor is given).")
    gpus_per_executor = serializers.IntegerField(
        min_value=0, default=0,
        help_text="GPUs (of its machine type's resource) each executor holds; 1 by default "
                  "for a gpu job, 0 for a cpu job.")
    gpus_per_task = serializers.FloatField(
        min_value=0, required=False, allow_null=True, default=None,
        help_text="Each task's part of its executor's GPUs: a whole number up to "
                  "gpus_per_executor, or a fraction such as 0.5 (tasks share a GPU); 1 by "
                  "default.")
    max_credits = serializers.DecimalField(max_digits=20, decimal_places=6, required=False,
                                           allow_null=True, default=None,
                                           min_value=Decimal("0.000001"))
    submission_id = serializers.CharField(max_length=128, required=False, allow_null=True,
                                          default=None)

    def validate_cores(self, value):
        if value > settings.DMARKET_MAX_JOB_CORES:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.DMARKET_MAX_JOB_CORES}.")
        return value

    def validate_executor_memory_mb(self, value):
        if value > settings.DMARKET_MAX_EXECUTOR_MEMORY_MB:
            raise serializers.ValidationError(
                "Ensure this value is less than or equal to "
                f"{settings.DMARKET_MAX_EXECUTOR_MEMORY_MB}.")
        return value

    def validate_driver_memory_mb(self, value):
        if value is not None and value > settings.DMARKET_MAX_DRIVER_MEMORY_MB:
            raise serializers.ValidationError(
                "Ensure this value is less than or equal to "
                f"{settings.DMARKET_MAX_DRIVER_MEMORY_MB}.")
        return value

    def validate_max_runtime(self, value):
        if value is not None and value > settings.DMARKET_MAX_JOB_RUNTIME:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.DMARKET_MAX_JOB_RUNTIME}.")
        return value

    def validate_gpus_per_executor(self, value):
        if value > settings.DMARKET_MAX_GPUS:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.DMARKET_MAX_GPUS}.")
        return value

    def validate_gpus_per_task(self, value):
        # FloatField takes "NaN" and "inf", which no amount of a GPU is.
        if value is not None and not math.isfinite(value):
            raise serializers.ValidationError("A valid number is required.")
        return value

    def validate_submission_id(self, value):
        if value is not None and not SUBMISSION_ID.match(value):
            raise serializers.ValidationError(
                "Use 1 to 128 letters, digits, '.', '_', ':' or '-'.")
        return value

    def validate_conf(self, value):
        try:
            return conf_check(value)
        except BadConf as e:
            raise serializers.ValidationError(str(e)) from None

    def validate_main_class(self, value):
        if value and not JAVA_CLASS.match(value):
            raise serializers.ValidationError(
                f"{value!r} is not a Java class name (such as org.example.Main).")
        return value

    def validate_requirements(self, value):
        if value:
            try:
                requirements_normalize(value)
            except BadRequirements as e:
                raise serializers.ValidationError(str(e)) from None
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("main_class") and not entry_is_jar(attrs["entry_file"]):
            raise serializers.ValidationError(
                {"main_class": ["Only a JAR entry file has a main class; a .py one runs as "
                                "it is."]})
        if attrs.get("requirements") and attrs.get("env"):
            raise serializers.ValidationError(
                {"env": ["Give requirements or a packed env, not both."]})
        attrs.update(gpus_check(attrs.get("machine_type"), attrs.get("gpus_per_executor", 0),
                                attrs.get("gpus_per_task")))
        if attrs["max_credits"] is None:
            attrs["max_credits"] = settings.DMARKET_DEFAULT_JOB_CAP
        # Fixed at submission, like the cap: a later change of the defaults leaves it alone.
        if attrs.get("driver_memory_mb") is None:
            attrs["driver_memory_mb"] = settings.DMARKET_DRIVER_MEMORY_MB
        if attrs.get("max_runtime") is None:
            attrs["max_runtime"] = settings.DMARKET_JOB_MAX_RUNTIME
        return attrs


def gpus_check(machine_type, gpus, per_task):
    """The job's machine type and GPUs, defaults filled in; ValidationError naming the field.

    Spark takes a task's amount as a whole number of GPUs, or as a fraction whose inverse is
    whole (that many tasks share one GPU)."""
    if machine_type is None:
        machine_type = default_machine_type(gpus)
    if machine_type == "cpu":
        if gpus:
            raise serializers.ValidationError({"gpus_per_executor": [
                "A cpu job's executors hold no GPU: leave machine_type out (or give gpu) to "
                "ask for GPUs."]})
        if per_task:
            raise serializers.ValidationError({"gpus_per_task": [
                "Only a job whose executors hold GPUs (gpus_per_executor) shares them."]})
        return {"machine_type": machine_type, "gpus_per_executor": 0, "gpus_per_task": 0.0}
    gpus = gpus or 1
    per_task = 1.0 if per_task is None else float(per_task)
    if per_task <= 0:
        raise serializers.ValidationError({"gpus_per_task": [
            "A task of a GPU job holds part of a GPU at least, e.g. 0.5 or 1."]})
    if per_task > gpus:
        raise serializers.ValidationError({"gpus_per_task": [
            f"A task cannot hold more GPUs ({per_task:g}) than its executor "
            f"({gpus}, gpus_per_executor)."]})
    if per_task < 1 / settings.DMARKET_MAX_GPUS:
        raise serializers.ValidationError({"gpus_per_task": [
            f"At most {settings.DMARKET_MAX_GPUS} tasks share one GPU: give at least "
            f"1/{settings.DMARKET_MAX_GPUS}."]})
    whole = per_task >= 1 and per_task == int(per_task)
    share = per_task < 1 and abs(1 / per_task - round(1 / per_task)) < 1e-9
    if not (whole or share):
        raise serializers.ValidationError({"gpus_per_task": [
            f"{per_task:g} is neither a whole number of GPUs nor a share of one (1/n, such "
            "as 0.5 or 0.25)."]})
    return {"machine_type": machine_type, "gpus_per_executor": gpus, "gpus_per_task": per_task}


# Fields a submission may leave empty: one that does digests as it did before they existed.
OPTIONAL_EMPTY = ("files", "conf", "main_class", "requirements", "env", "working_dir",
                  "gpus_per_executor", "gpus_per_task")


def submission_digest(fields):
    """What a retry must repeat to count as the same submission."""
    # Quantized: an omitted cap (the default, e.g. Decimal("10")) and the same cap given
    # explicitly (parsed to 6 places) are the same submission.
    # No files, and the default driver memory and runtime, are left out: such a submission
    # digests as it did before jobs had them.
    defaults = {"driver_memory_mb": settings.DMARKET_DRIVER_MEMORY_MB,
                "max_runtime": settings.DMARKET_JOB_MAX_RUNTIME}
    canonical = {k: str(Decimal(v).quantize(QUANTUM)) if k == "max_credits" else v
                 for k, v in fields.items()
                 if k != "submission_id" and not (k in OPTIONAL_EMPTY and not v)
                 and not (k in defaults and v in (None, defaults[k]))}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class JobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="user.username", read_only=True)
    app_params = serializers.ListField(child=serializers.CharField(), read_only=True)
    libs = serializers.ListField(child=serializers.CharField(), read_only=True)
    archives = serializers.ListField(child=serializers.CharField(), read_only=True)
    files = serializers.ListField(child=serializers.CharField(), read_only=True)

    conf = serializers.DictField(child=serializers.CharField(), read_only=True)
    environment = serializers.CharField(source="environment.key", read_only=True, default=None)
    requirements = serializers.CharField(source="environment.requirements", read_only=True,
                                         default="")
    # Its run's: what it is billed under.
    max_credits = credits_field(source="run.max_credits", read_only=True)
    price_per_core_hour = credits_field(source="run.price_per_core_hour", read_only=True)
    price_per_gpu_hour = credits_field(source="run.price_per_gpu_hour", read_only=True)
    premium_rate = serializers.DecimalField(source="run.premium_rate", max_digits=8,
                                            decimal_places=4, read_only=True)
    cost = credits_field(source="run.cost", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "owner", "name", "entry_file", "libs", "archives", "files", "app_params",
                  "conf", "main_class", "requirements", "environment", "env", "working_dir",
                  "cores", "executor_memory_mb", "driver_memory_mb", "max_runtime",
                  "machine_type", "gpus_per_executor", "gpus_per_task", "max_credits",
                  "submission_id", "status", "status_reason", "cancel_requested",
                  "price_per_core_hour", "price_per_gpu_hour", "premium_rate", "cost",
                  "spark_app_id", "exit_code",
                  "created_at", "started_at", "finished_at", "settled_at"]
        read_only_fields = [f for f in fields if f not in (
            "owner", "app_params", "libs", "archives", "files", "conf", "environment",
            "requirements")]


class LogSerializer(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField())
    offset = serializers.IntegerField(help_text="The byte offset these lines start at.")
    next = serializers.IntegerField(help_text="Pass as ?from= to read on.")
    ended = serializers.BooleanField(help_text="The job has finished: no more lines will come.")
    status = serializers.CharField()


class ResultFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    modified_at = serializers.DateTimeField()
    sha256 = serializers.CharField(allow_null=True, help_text=(
        "Recorded when the job's results are stored, after it ends; null before."))
