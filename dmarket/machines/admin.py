from django import forms
from django.contrib import admin
from rest_framework import serializers

from .models import Machine, MachineStateChange
from .serializers import MachineCreateSerializer, machine_gpus_check
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


class MachineForm(forms.ModelForm):
    """The API's checks on the fields it sets, so that an operator's edit cannot store a value
    the API would refuse (a window the next heartbeat cannot read, say)."""

    def _api_check(self, name):
        value = self.cleaned_data[name]
        serializer = MachineCreateSerializer()
        try:
            value = serializer.fields[name].run_validation(value)
            return getattr(serializer, f"validate_{name}", lambda v: v)(value)
        except serializers.ValidationError as e:
            raise forms.ValidationError([str(m) for m in e.detail]) from None

    def clean_address(self):
        return self._api_check("address")

    def clean_machine_type(self):
        return self._api_check("machine_type")

    def clean_sharing_window(self):
        return self._api_check("sharing_window")

    def clean_gpus(self):
        return self._api_check("gpus")

    def clean(self):
        cleaned = super().clean()
        if "gpus" in cleaned and "machine_type" in cleaned:
            try:
                machine_gpus_check(cleaned["machine_type"], cleaned["gpus"])
            except serializers.ValidationError as e:
                self.add_error("gpus", [str(m) for m in e.detail["gpus"]])
        return cleaned


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    form = MachineForm
    list_display = ["id", "name", "address", "user", "state", "cores", "memory_mb",
                    "machine_type", "gpus", "last_heartbeat", "worker_state"]
    list_filter = ["state", "machine_type"]
    search_fields = ["name", "address", "user__username", "worker_id"]
    list_select_related = ["user"]
    readonly_fields = ["state", "last_heartbeat", "heartbeat_timeout", "worker_id", "worker_state",
                       "cores_in_use", "created_at", "removed_at"]
    actions = [mark_offline]
    inlines = [StateChangeInline]
