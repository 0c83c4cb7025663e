"""Who may use a route: every API view's default permission (settings.REST_FRAMEWORK)."""

from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated

# What a machine token is refused with, on every route that is not its machine's.
MACHINE_TOKEN_REFUSED = ("A machine token is only for its machine's agent (the machine's "
                         "heartbeat and details); use your own token.")


def machine_token(request):
    """The machine id of the request's machine token, or None for a user's token."""
    return getattr(request.auth, "machine_id", None)


class IsUser(IsAuthenticated):
    """Authenticated (401 without a valid token). A machine token (a machine agent's,
    dmarket/accounts/models.py) is refused with 403 except on the methods a view names in
    `machine_token_methods`, and there only for its own machine (the view's `pk`): another
    machine's id is 403 too. A user's own token is not restricted here."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        machine_id = machine_token(request)
        if machine_id is None:
            return True
        if request.method not in getattr(view, "machine_token_methods", ()):
            raise exceptions.PermissionDenied(MACHINE_TOKEN_REFUSED)
        if str(view.kwargs.get("pk")) != str(machine_id):
            raise exceptions.PermissionDenied(
                f"This token is machine {machine_id}'s; it cannot act for another machine.")
        return True
