from django.conf import settings
from django.core.management.base import BaseCommand

from dmarket.cluster.billing import billing_tick
from dmarket.common.daemon import run_loop


class Command(BaseCommand):
    help = ("Bill running and finished jobs from their executors' lifetimes in the Spark "
            "history server, and settle finished jobs. Without --loop, one pass (for cron).")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until SIGTERM")

    def handle(self, *args, **options):
        if options["loop"]:
            run_loop(billing_tick, settings.DMARKET_BILLING_POLL, "billing")
        else:
            self.stdout.write(f"{billing_tick()} job(s) settled")
