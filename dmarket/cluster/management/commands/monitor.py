from django.conf import settings
from django.core.management.base import BaseCommand

from dmarket.cluster.monitor import monitor_tick
from dmarket.common.daemon import run_loop


class Command(BaseCommand):
    help = ("The failure detector of shared machines: OFFLINE when their heartbeats stop for "
            "DMARKET_HEARTBEAT_TIMEOUT or the Spark master lost their worker. Without --loop, "
            "one pass.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until SIGTERM")

    def handle(self, *args, **options):
        if options["loop"]:
            run_loop(monitor_tick, settings.DMARKET_MONITOR_POLL, "monitor")
        else:
            self.stdout.write(f"{monitor_tick()} machine(s) changed state")
