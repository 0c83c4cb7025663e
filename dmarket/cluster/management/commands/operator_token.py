import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = ("Print the API token of the operator account (DJANGO_SUPERUSER_USERNAME, else the "
            "first superuser; an 'admin' without a password is made if there is none), for "
            "the scripts that share this machine on the operator's behalf.")

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        owner = (User.objects.filter(username=username).first() if username else
                 User.objects.filter(is_superuser=True).order_by("id").first())
        if owner is None:
            owner = User.objects.create_superuser(username or "admin", "", None)
            self.stderr.write(f"Created the operator account {owner.username!r} (no password: "
                              f"set one with manage.py changepassword {owner.username}).")
        token, _ = Token.objects.get_or_create(user=owner)
        self.stdout.write(token.key)
