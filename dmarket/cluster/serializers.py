from rest_framework import serializers


class ExecutorSerializer(serializers.Serializer):
    id = serializers.CharField()
    host = serializers.CharField()
    machine = serializers.IntegerField(allow_null=True)
    cores = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_blank=True)
    core_seconds = serializers.DecimalField(max_digits=20, decimal_places=3, allow_null=True)
    logs = serializers.DictField(child=serializers.CharField())


class ExecutorLogSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True)
    offset = serializers.IntegerField()
    next = serializers.IntegerField()
    length = serializers.IntegerField(allow_null=True, help_text="The log's size now.")
