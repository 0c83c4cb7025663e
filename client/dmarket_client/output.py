"""Tables for people, JSON for scripts."""

import json as jsonlib

import click

from .context import Context


def json_option(f):
    """--json on any command (as well as on `dmarket --json ...`)."""

    def set_json(ctx, param, value):
        if value:
            ctx.ensure_object(Context).as_json = True
        return value

    return click.option("--json", "as_json", is_flag=True, expose_value=False,
                        callback=set_json, help="Print JSON for scripts.")(f)


def quiet_option(f):
    """--quiet/-q on a command that creates a job: print only the new job's id (a line with
    the number; nothing else on stdout, even with --json)."""

    def set_quiet(ctx, param, value):
        if value:
            ctx.ensure_object(Context).quiet = True
        return value

    return click.option("--quiet", "-q", "quiet", is_flag=True, expose_value=False,
                        callback=set_quiet,
                        help="Print only the new job's id (for scripts).")(f)


def emit_json(data):
    click.echo(jsonlib.dumps(data, indent=2, default=str))


def table(rows, columns):
    """rows: dicts; columns: (key, header) pairs. Plain aligned text, one row a line."""
    headers = [header for _, header in columns]
    cells = [[("" if row.get(key) is None else str(row.get(key))) for key, _ in columns]
             for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def fields(data, names):
    """One object as 'name: value' lines."""
    width = max(len(n) for n in names)
    for name in names:
        value = data.get(name)
        click.echo(f"{name.ljust(width)}  {'' if value is None else value}")


def emit(ctx, data, columns=None, names=None):
    """JSON when asked for; else a table (a list, with columns) or fields (an object)."""
    if ctx.as_json:
        emit_json(data)
    elif isinstance(data, list):
        table(data, columns)
    else:
        fields(data, names or list(data))
