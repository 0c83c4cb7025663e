from django.contrib import admin, messages

from dmarket.common.api import Conflict

from .models import Job
from .services import job_cancel


@admin.action(description="Cancel the selected jobs")
def cancel_jobs(modeladmin, request, queryset):
    for job in queryset:
        try:
            done = job_cancel(job, reason=f"cancelled by operator {request.user}")
        except Conflict as e:
            modeladmin.message_user(request, str(e.detail), messages.WARNING)
            continue
        word = "cancelled" if done else "asked to stop"
        modeladmin.message_user(request, f"Job {job.pk} {word}.")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "status", "cores", "machine_type", "gpus_per_executor",
                    "run__max_credits", "run__cost", "created_at", "finished_at"]
    list_filter = ["status", "machine_type", "created_at"]
    search_fields = ["name", "user__username", "spark_app_id", "submission_id"]
    list_select_related = ["user", "run"]
    date_hierarchy = "created_at"
    actions = [cancel_jobs]

    # Jobs change only through the market's rules (submit, cancel, the launcher).
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
