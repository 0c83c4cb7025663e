from django.conf import settings

from dmarket.cluster.launcher import launcher_tick
from dmarket.common.daemon import DaemonCommand


class Command(DaemonCommand):
    help = ("Start queued jobs on the Spark cluster and follow them to their end. Without "
            "--loop, one iteration. Drivers keep running when the launcher stops; a restarted "
            "launcher takes them up again.")
    interval_setting = "DMARKET_LAUNCHER_POLL"
    report = "{} job(s) started"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--id", default=settings.DMARKET_LAUNCHER_ID,
                            help="the name this launcher claims jobs under (default: "
                                 "DMARKET_LAUNCHER_ID, the host name)")

    def tick(self, options):
        return launcher_tick(options["id"])
