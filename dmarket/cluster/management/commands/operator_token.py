import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from dmarket.accounts.models import ApiToken


class Command(BaseCommand):
    help = ("Issue a new API token of the operator account (DJANGO_SUPERUSER_USERNAME, else "
            "the first superuser; an 'admin' without a password is made if there is none) and "
            "print it, for the scripts that share this machine on the operator's behalf. "
            "Only tokens' digests are kept, so each run makes a new one; the earlier ones stay "
            "valid until revoked in the admin.")

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        owner = (User.objects.filter(username=username).first() if username else
                 User.objects.filter(is_superuser=True).order_by("id").first())
        if owner is None:
            owner = User.objects.create_superuser(username or "admin", "", None)
            self.stderr.write(f"Created the operator account {owner.username!r} (no password: "
                              f"set one with manage.py changepassword {owner.username}).")
        _, key = ApiToken.issue(owner, name="operator_token")
        self.stdout.write(key)
