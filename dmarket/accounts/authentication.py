import hmac
from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken, key_digest

# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's own, against ApiToken's digests. request.user is
    the token's user and request.auth the ApiToken: a machine token (auth.machine_id set) is
    the machine owner's, and the permission class refuses it outside its machine's routes."""

    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key):
        digest = key_digest(key)
        # The digest is unique: no ordering, no LIMIT's sort (every request pays for this).
        token = next(iter(ApiToken.objects.select_related("user", "machine")
                          .filter(digest=digest).order_by()), None)
        # The lookup already matched; the constant-time comparison is there for a database
        # whose comparison might not be exact (a collation, trailing spaces).
        if token is None or not hmac.compare_digest(token.digest, digest):
            raise exceptions.AuthenticationFailed("Invalid token.")
        # A machine's removal deletes its tokens; this covers one written past it (an update in
        # the database).
        if token.machine is not None and token.machine.state == token.machine.REMOVED:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token
