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


def validate_machine_type(value):
    """A machine type is one the market has a price for."""
    from django.conf import settings

    if value not in settings.DMARKET_PRICES:
        known = ", ".join(sorted(settings.DMARKET_PRICES))
        raise serializers.ValidationError(f"Unknown machine type {value!r}; known: {known}.")
