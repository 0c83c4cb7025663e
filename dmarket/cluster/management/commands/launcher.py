from django.conf import settings
from django.core.management.base import BaseCommand

from dmarket.cluster.launcher import launcher_tick
from dmarket.common.daemon import run_loop


class Command(BaseCommand):
    help = ("Start queued jobs on the Spark cluster and follow them to their end. Without "
            "--loop, one iteration. Drivers keep running when the launcher stops; a restarted "
            "launcher takes them up again.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until SIGTERM")
        parser.add_argument("--id", default=settings.DMARKET_LAUNCHER_ID,
                            help="the name this launcher claims jobs under (default: "
                                 "DMARKET_LAUNCHER_ID, the host name)")

    def handle(self, *args, **options):
        tick = lambda: launcher_tick(options["id"])  # noqa: E731
        if options["loop"]:
            run_loop(tick, settings.DMARKET_LAUNCHER_POLL, "launcher")
        else:
            started = tick()
            self.stdout.write(f"{started} job(s) started")
