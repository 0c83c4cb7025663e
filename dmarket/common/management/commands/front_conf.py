"""Writes nginx's configuration for the central server's front (dmarket/common/front.py)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dmarket.common.front import nginx_conf_write


class Command(BaseCommand):
    help = "Write nginx's configuration: the public address before the two gunicorn pools."

    def add_arguments(self, parser):
        parser.add_argument("--listen", required=True, help="host:port nginx listens on")
        parser.add_argument("--web-socket", required=True, help="the gthread pool's socket")
        parser.add_argument("--beat-socket", required=True, help="the heartbeat pool's socket")
        parser.add_argument("--run-dir", required=True, help="pid and temporary files")
        parser.add_argument("--log-file", required=True,
                            help="nginx's error log, or stderr (under systemd)")
        parser.add_argument("--out", required=True, help="the file to write")

    def handle(self, *args, **options):
        try:
            # The largest upload a user could make is their whole storage quota.
            nginx_conf_write(
                options["out"],
                listen=options["listen"], web_socket=Path(options["web_socket"]).resolve(),
                beat_socket=Path(options["beat_socket"]).resolve(),
                run_dir=Path(options["run_dir"]).resolve(),
                log_file=("stderr" if options["log_file"] == "stderr"
                          else Path(options["log_file"]).resolve()),
                max_body_mb=settings.DMARKET_STORAGE_QUOTA_MB,
                trust_forwarded_proto=bool(getattr(settings, "SECURE_PROXY_SSL_HEADER", None)))
        except ValueError as error:
            raise CommandError(str(error)) from None
