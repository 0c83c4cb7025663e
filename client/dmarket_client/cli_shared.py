"""What the command modules (cli, env_cli, files_cli, infer_cli) share: the group that turns
the server's refusals into exit code 1, the status line on stderr, and values fit for people.

Kept apart from cli.py so that the command modules never import cli.py, which imports them.
"""

import re
import shlex
import sys

import click
import requests

from .api import ApiError

CONTEXT = {"help_option_names": ["-h", "--help"]}

# LOST too for inference jobs (none is lost today), so that following one always ends.
FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED", "LOST")


class Failure(click.ClickException):
    """Exit 1 with `dmarket: <message>` on stderr."""

    def show(self, file=None):
        click.echo(f"dmarket: {self.format_message()}", err=True, file=file)


class Group(click.Group):
    """A group that turns the server's refusals into `dmarket: <detail>` and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ApiError as e:
            raise Failure(e.detail) from None
        except requests.RequestException as e:
            # A transfer that broke half-way (a download), after the request itself succeeded.
            raise Failure(f"the connection to the server failed: {e}") from None
        except click.UsageError:
            raise
        except click.ClickException as e:
            if isinstance(e, Failure):
                raise
            failure = Failure(e.format_message())
            failure.exit_code = e.exit_code
            raise failure from None


# --- formatting ---------------------------------------------------------------------------

ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$")
TIME_FIELDS = ("created_at", "started_at", "finished_at", "settled_at", "date_joined",
               "modified_at", "ended_at")


def short_time(value):
    """'2026-11-22T08:25:30.398123Z' -> '2026-11-22 08:25:30 UTC' (None -> None)."""
    if not value:
        return value
    match = ISO_TIME.match(value)
    if not match:
        return value
    day, clock, zone = match.groups()
    zone = "UTC" if zone in ("Z", "+00:00") else zone
    return f"{day} {clock}" + (f" {zone}" if zone else "")


def human_size(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def gpu_amount(value):
    """A GPU amount as people write it: 1 rather than 1.0, 0.25 as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def for_people(data):
    """A copy of an API object fit for `name  value` lines and tables."""
    shown = dict(data)
    for key, value in data.items():
        if key in TIME_FIELDS or key in ("created", "started", "ended"):
            shown[key] = short_time(value)
        elif key == "app_params":
            shown[key] = shlex.join(value)
        elif isinstance(value, list):
            shown[key] = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            shown[key] = "yes" if value else "no"
        elif isinstance(value, dict):
            shown[key] = ", ".join(f"{k}={v}" for k, v in value.items())
        elif key == "requirements" and value:
            shown[key] = "; ".join(value.splitlines())
        elif key == "gpus_per_task":
            shown[key] = gpu_amount(value)
    return shown


# --- progress on stderr -------------------------------------------------------------------

def stderr_is_tty():
    # sys.stderr, not click.get_text_stream (deprecated in click 8.5, gone in 9).
    return sys.stderr.isatty()


class StatusLine:
    """A status on stderr: redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self):
        self.tty = stderr_is_tty()
        self.last = None

    def show(self, text):
        if text == self.last:
            return
        if self.tty:
            # Spaces, not an escape sequence, to wipe what is left of a longer line.
            wipe = " " * max(0, len(self.last or "") - len(text))
            click.echo(f"\r{text}{wipe}", err=True, nl=False)
        else:
            click.echo(text, err=True)
        self.last = text

    def close(self, keep=True):
        """End the line (keep) or wipe it."""
        if self.tty and self.last is not None:
            if keep:
                click.echo(err=True)
            else:
                click.echo("\r" + " " * len(self.last) + "\r", err=True, nl=False)
        self.last = None


def progress_display(line, name):
    """A Client.download progress callback drawing on line; None off a terminal."""
    if not line.tty:
        return None

    def show(done, total):
        of = f" of {human_size(total)} ({done * 100 // total}%)" if total else ""
        line.show(f"{name}  {human_size(done)}{of}")

    return show
