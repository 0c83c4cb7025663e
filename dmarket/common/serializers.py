from rest_framework import serializers


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
