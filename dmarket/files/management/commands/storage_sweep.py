import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from dmarket.files.services import storage_sweep
from dmarket.files.storage import StorageUnavailable


class Command(BaseCommand):
    help = ("Delete from the file store (the local directory or the object store) the bytes "
            "that no version, result or environment names and that are older than "
            "--older-than-hours (24), and abort uploads under way begun before then: what a "
            "server killed between storing bytes and recording them, or a failed deletion, "
            "left. --dry-run only counts.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than-hours", type=float, default=24.0)
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, older_than_hours, dry_run, as_json, **options):
        if older_than_hours < 1:
            raise CommandError("--older-than-hours must be at least 1: younger bytes may be "
                               "an upload whose row is being written.")
        try:
            counts = storage_sweep(timedelta(hours=older_than_hours), dry_run=dry_run)
        except StorageUnavailable as e:
            raise CommandError(str(e.detail)) from None
        if as_json:
            self.stdout.write(json.dumps(counts))
            return
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"checked {counts['checked']} stored blobs; {verb} "
                          f"{counts['deleted']} that nothing names; aborted "
                          f"{counts['aborted']} uploads left under way")
