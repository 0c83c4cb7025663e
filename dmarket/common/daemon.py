"""The shape of every daemon: a function for one iteration, run once or in a loop."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
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


class DaemonCommand(BaseCommand):
    """A management command for a daemon: one iteration, or --loop until SIGTERM.

    Subclasses give `tick` (the iteration, returning a count), `interval_setting` (the name of
    the setting with the seconds between iterations) and `report` (what one iteration did)."""

    interval_setting = None
    report = "{} done"

    def tick(self, options):
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until SIGTERM")

    def handle(self, *args, **options):
        if options["loop"]:
            name = self.__module__.rsplit(".", 1)[-1]
            run_loop(lambda: self.tick(options), getattr(settings, self.interval_setting), name)
        else:
            self.stdout.write(self.report.format(self.tick(options)))
