from django.contrib import admin

from .models import PolicedApp


@admin.register(PolicedApp)
class PolicedAppAdmin(admin.ModelAdmin):
    list_display = ["app_id", "name", "spark_user", "driver_address", "job", "cores",
                    "started_at", "killed_at", "reason"]
    list_filter = ["killed_at"]
    search_fields = ["app_id", "name", "spark_user", "driver_address", "job__id"]
    list_select_related = ["job"]
    date_hierarchy = "killed_at"

    # A record of what the launchers did; nobody edits it.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
