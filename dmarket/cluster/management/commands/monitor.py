from dmarket.cluster.monitor import monitor_tick
from dmarket.common.daemon import DaemonCommand


class Command(DaemonCommand):
    help = ("The failure detector of shared machines: OFFLINE when their heartbeats stop for "
            "DMARKET_HEARTBEAT_TIMEOUT or the Spark master lost their worker. Without --loop, "
            "one pass.")
    interval_setting = "DMARKET_MONITOR_POLL"
    report = "{} machine(s) changed state"

    def tick(self, options):
        return monitor_tick()
