"""Rate limits of the sign-up and login endpoints (settings DMARKET_REGISTER_RATE,
DMARKET_LOGIN_RATE, DMARKET_LOGIN_USERNAME_RATE). Past one, DRF answers 429 with Retry-After.

The request histories live in the "throttle" cache (a database table, see CACHES in
settings.py), which every server process shares."""

import hashlib

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle


class SettingRateMixin:
    """The rate from a Django setting, read when the throttle is made (once per request), so
    that a changed setting applies at once; an empty rate turns the throttle off."""

    rate_setting = None

    @property
    def cache(self):
        return caches["throttle"]

    def get_rate(self):
        return getattr(settings, self.rate_setting) or None


class RegisterThrottle(SettingRateMixin, AnonRateThrottle):
    """Sign-ups per client address."""

    scope = "register"
    rate_setting = "DMARKET_REGISTER_RATE"


class LoginThrottle(SettingRateMixin, AnonRateThrottle):
    """Login attempts per client address."""

    scope = "login"
    rate_setting = "DMARKET_LOGIN_RATE"


class LoginUsernameThrottle(SettingRateMixin, SimpleRateThrottle):
    """Login attempts per username, from any address: a slow guessing of one account's
    password from many addresses meets this one."""

    scope = "login_username"
    rate_setting = "DMARKET_LOGIN_USERNAME_RATE"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if isinstance(request.data, dict) else None
        if not isinstance(username, str):
            return None  # refused by the serializer anyway
        # Case-folded: ALICE and alice are one account to sign-up. Hashed: any length or
        # character is a valid cache key.
        ident = hashlib.sha256(username.casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}
