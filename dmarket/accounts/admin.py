from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Operators see whose tokens there are and when they were last used, and revoke them by
    deleting them. No key is anywhere to show, and none is made here: a user logs in for one,
    the operator runs `manage.py operator_token` for theirs."""

    list_display = ["key_prefix", "name", "user", "machine", "created_at", "last_used_at"]
    list_filter = ["name", "created_at", "last_used_at"]
    search_fields = ["user__username", "prefix", "name"]
    list_select_related = ["user", "machine"]
    date_hierarchy = "created_at"
    fields = ["key_prefix", "name", "user", "machine", "created_at", "last_used_at"]
    readonly_fields = fields

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, token):
        return f"{token.prefix}…"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
