from django.contrib import admin

from .models import Machine, MachineStateChange
from .services import machine_set_state


class StateChangeInline(admin.TabularInline):
    model = MachineStateChange
    extra = 0
    can_delete = False
    readonly_fields = ["state", "reason", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description="Mark the selected machines offline")
def mark_offline(modeladmin, request, queryset):
    changed = 0
    for machine in queryset.exclude(state=Machine.REMOVED):
        changed += machine_set_state(machine, Machine.OFFLINE, f"marked offline by {request.user}")
    modeladmin.message_user(request, f"{changed} machine(s) marked offline.")


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "address", "user", "state", "cores", "memory_mb",
                    "machine_type", "last_heartbeat", "worker_state"]
    list_filter = ["state", "machine_type"]
    search_fields = ["name", "address", "user__username", "worker_id"]
    list_select_related = ["user"]
    readonly_fields = ["state", "last_heartbeat", "worker_id", "worker_state", "created_at",
                       "removed_at"]
    actions = [mark_offline]
    inlines = [StateChangeInline]
