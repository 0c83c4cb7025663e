from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


def grant_on_signup(sender, instance, created, raw=False, **kwargs):
    # Every new user, however created (API, admin, createsuperuser), gets an account and the
    # sign-up grant, once.
    from .services import credits_grant

    if created and not raw and settings.DMARKET_SIGNUP_GRANT > 0:
        credits_grant(instance, settings.DMARKET_SIGNUP_GRANT,
                      key=f"grant:signup:{instance.pk}", memo="sign-up grant")


class CreditsConfig(AppConfig):
    name = "dmarket.credits"

    def ready(self):
        post_save.connect(grant_on_signup, sender=settings.AUTH_USER_MODEL,
                          dispatch_uid="dmarket_grant_on_signup")
