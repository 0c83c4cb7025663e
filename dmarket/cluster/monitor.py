"""The failure detector's pass: heartbeats, and the Spark master's own list of workers."""

from dmarket.machines.services import machines_monitor

from . import spark


def monitor_tick():
    try:
        workers = (spark.master_state() or {}).get("workers", [])
    except spark.SparkUnavailable:
        workers = None
    return machines_monitor(workers)
