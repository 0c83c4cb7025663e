import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Create the first operator account from DJANGO_SUPERUSER_USERNAME, "
            "DJANGO_SUPERUSER_PASSWORD and DJANGO_SUPERUSER_EMAIL, unless it exists.")

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        if not username:
            self.stdout.write("DJANGO_SUPERUSER_USERNAME is not set: no operator account made.")
            return
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Operator account {username!r} exists.")
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not password:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD is not set.")
        User.objects.create_superuser(username, os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
                                      password)
        self.stdout.write(f"Operator account {username!r} created.")
