from django.contrib import admin

from dmarket.common.admin import ReadOnlyAdmin

from .models import FileVersion, JobInput


@admin.register(FileVersion)
class FileVersionAdmin(ReadOnlyAdmin):
    """Who stores what: operators look; files change only through the API's rules (quota,
    atomic uploads, no deleting what an unfinished job uses)."""

    list_display = ["id", "owner", "name", "version", "size", "sha256", "public", "created_at"]
    list_filter = ["file__public", "created_at"]
    search_fields = ["file__name", "file__user__username", "sha256"]
    list_select_related = ["file__user"]
    date_hierarchy = "created_at"

    @admin.display(ordering="file__user__username")
    def owner(self, version):
        return version.file.user

    @admin.display(ordering="file__name")
    def name(self, version):
        return version.file.name

    @admin.display(boolean=True, ordering="file__public")
    def public(self, version):
        return version.file.public


@admin.register(JobInput)
class JobInputAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "uri", "version", "result_job", "result_path"]
    search_fields = ["uri", "run__label"]
    list_select_related = ["run", "version__file", "result_job"]
