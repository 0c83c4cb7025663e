from django.contrib import admin

from .models import Environment


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["key", "status", "python", "platform", "size", "uses", "created_at",
                    "built_at", "builder"]
    list_filter = ["status", "python", "platform"]
    search_fields = ["key", "requirements"]
    readonly_fields = ["key", "requirements", "python", "platform", "size", "sha256", "uses",
                       "created_at", "built_at", "build_started_at", "builder", "error"]
    fields = readonly_fields + ["status"]

    def has_add_permission(self, request):
        return False
