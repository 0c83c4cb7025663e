from rest_framework import serializers

from dmarket.common.serializers import StrictSerializer

from .models import Environment
from .services import log_tail


class EnvironmentRequestSerializer(StrictSerializer):
    requirements = serializers.CharField(max_length=100000, trim_whitespace=False,
                                         help_text="A requirements.txt.")


class EnvironmentSaveSerializer(StrictSerializer):
    name = serializers.CharField(max_length=1000,
                                 help_text="The file to store it as (ending in .tar.gz).")


class EnvironmentSerializer(serializers.ModelSerializer):
    log_tail = serializers.SerializerMethodField(
        help_text="The end of the build's log while it builds or after it failed.")

    class Meta:
        model = Environment
        fields = ["key", "status", "requirements", "python", "platform", "size", "sha256",
                  "error", "uses", "created_at", "built_at", "log_tail"]
        read_only_fields = fields

    def get_log_tail(self, env) -> str:
        return "" if env.status == Environment.READY else log_tail(env, 1000)
