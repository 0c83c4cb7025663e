from dmarket.cluster.billing import billing_tick
from dmarket.common.daemon import DaemonCommand


class Command(DaemonCommand):
    help = ("Bill running and finished jobs from their executors' lifetimes in the Spark "
            "history server, and settle finished jobs. Without --loop, one pass (for cron).")
    interval_setting = "DMARKET_BILLING_POLL"
    report = "{} job(s) settled"

    def tick(self, options):
        return billing_tick()
