"""The shape of every daemon: a function for one iteration, run once or in a loop."""

import logging
import signal
import threading

from django.db import close_old_connections, connection

log = logging.getLogger("dmarket.daemon")


def run_loop(tick, interval, name):
    """Call tick() every `interval` seconds until SIGTERM or SIGINT; the iteration under way
    finishes first. An iteration that raises is logged and the loop goes on."""
    stop = threading.Event()

    def request_stop(signum, frame):
        log.info("%s: signal %s, stopping after this iteration", name, signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("%s: started", name)
    while not stop.is_set():
        try:
            tick()
        except Exception:
            log.exception("%s: iteration failed", name)
            # A broken connection (the database restarted) is reopened next time.
            connection.close()
        close_old_connections()
        stop.wait(interval)
    log.info("%s: stopped", name)
