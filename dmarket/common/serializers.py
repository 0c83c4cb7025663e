from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so that a misspelt field is an error, not ignored."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as e:
            if unknown and isinstance(e.detail, dict):
                e.detail.update({name: ["Unknown field."] for name in unknown})
            raise
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return value


def machine_types():
    """"cpu" (cores only) and each accelerator the market has a price for (which names the
    Spark resource its machines offer and its jobs ask for)."""
    from django.conf import settings

    return ["cpu"] + [name for name in settings.DMARKET_PRICES if name not in ("core", "cpu")]


def default_machine_type(gpus):
    """The machine type of a machine or job that leaves it out: gpu (or the market's first
    accelerator) when it offers or asks for GPUs, else cpu."""
    if not gpus:
        return "cpu"
    accelerators = machine_types()[1:]
    return "gpu" if "gpu" in accelerators else next(iter(accelerators), "cpu")


def validate_machine_type(value):
    """A machine type is "cpu" or an accelerator the market has a price for."""
    if value not in machine_types():
        known = ", ".join(machine_types())
        raise serializers.ValidationError(f"Unknown machine type {value!r}; known: {known}.")


# Field classes whose to_representation is plain conversion (DRF 3.16): applied directly.
PLAIN = {serializers.CharField: str, serializers.IntegerField: int,
         serializers.BooleanField: bool, serializers.FloatField: float}


class Zoned:
    """A converter that needs the current time zone (a request's, which a thread-local holds):
    looked up once per page by ValuesSerializer.data, not once per value."""

    def __init__(self, make):
        self.make = make

    def __call__(self, value):
        return self.make(timezone.get_current_timezone())(value)


def fast_converter(field):
    """A function equal to field.to_representation on the values a database column gives
    (never None: the caller handles it), without DRF's per-call checks where that is safe."""
    kind = type(field)
    if kind in PLAIN:
        return PLAIN[kind]
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        return int  # values() gives a foreign key's id under the field's own name
    if kind is serializers.DecimalField and getattr(
            field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING) and (
            field.decimal_places is not None and field.rounding is None
            and not field.localize and not field.normalize_output):
        quantum = Decimal(1).scaleb(-field.decimal_places)
        return lambda value: format(value.quantize(quantum), "f")
    if (kind is serializers.DateTimeField and getattr(field, "format", empty) is empty
            and api_settings.DATETIME_FORMAT == ISO_8601 and not hasattr(field, "timezone")):
        # DRF: to the current time zone, ISO 8601 with Z for UTC.
        def datetime_iso(zone):
            def convert(value):
                text = value.astimezone(zone).isoformat()
                return text[:-6] + "Z" if text.endswith("+00:00") else text
            return convert
        return Zoned(datetime_iso) if settings.USE_TZ else field.to_representation
    if kind in (serializers.ListField, serializers.DictField) and (
            type(field.child) is serializers.CharField):
        if kind is serializers.ListField:
            return lambda items: [None if item is None else str(item) for item in items]
        return lambda pairs: {str(key): None if value is None else str(value)
                              for key, value in pairs.items()}
    return field.to_representation


class ValuesSerializer:
    """A read-only ModelSerializer's output from `queryset.values(*columns)`, without model
    instances or DRF's per-field calls: a page of 50 jobs renders in a fraction of the time.
    Fields and their order are the serializer's own, so the two cannot drift apart (a test
    compares their output on each list that uses this)."""

    def __init__(self, serializer_class):
        self.columns, self.plan = [], []
        for name, field in serializer_class().fields.items():
            if field.write_only:
                continue
            source = "__".join(field.source_attrs)
            # DRF gives the default when the attribute's path cannot be followed (a null
            # foreign key on the way), which values() shows as None.
            default = None if field.default is empty else field.default
            self.columns.append(source)
            self.plan.append((name, source, fast_converter(field), default))

    def values(self, queryset):
        return queryset.values(*self.columns)

    def rows_counted(self, queryset):
        """values(queryset) for a paginator, its COUNT(*) made on `queryset` itself: the
        model's table alone, without the joins of the rows' columns (to-one joins: the same
        number)."""
        return CountedRows(self.values(queryset), queryset)

    def data(self, rows):
        zone = timezone.get_current_timezone()
        plan = [(name, source, convert.make(zone) if isinstance(convert, Zoned) else convert,
                 default) for name, source, convert, default in self.plan]
        return [{name: default if (value := row[source]) is None else convert(value)
                 for name, source, convert, default in plan} for row in rows]


class CountedRows:
    def __init__(self, rows, plain):
        self.rows, self.plain = rows, plain
        self.ordered = rows.ordered

    def count(self):
        return self.plain.count()

    def __getitem__(self, index):
        return self.rows[index]
