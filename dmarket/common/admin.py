from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Operators look; the rows change only through the services' rules."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
