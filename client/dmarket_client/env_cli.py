"""`dmarket env ...`: job environments built by the market from a requirements file, and the
packing of a job's --working-dir."""

import os
import shutil
import tempfile
import time
import zipfile

import click
import pathspec

from .cli_shared import CONTEXT, Failure, Group, StatusLine, human_size
from .context import pass_context
from .output import emit, json_option

IGNORE_FILE = ".dmarketignore"
# Never worth shipping, as Ray leaves them out of a working_dir.
ALWAYS_IGNORED = [".git/", "__pycache__/", "*.pyc", ".dmarketignore"]
WORKDIR_MAX_MB = 100
# A fixed time for every entry: the same files pack to the same bytes, which the store then
# already holds (the upload is skipped).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ENV_FIELDS = ["key", "status", "python", "platform", "size", "uses", "built_at", "error"]


def workdir_pack(directory, limit_mb=WORKDIR_MAX_MB):
    """Zip DIRECTORY (less what its .dmarketignore names, in .gitignore's syntax) into a
    temporary file, the same bytes for the same files; returns its path."""
    root = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(root):
        raise click.BadParameter(f"{directory}: no such directory here",
                                 param_hint="'--working-dir'")
    patterns = list(ALWAYS_IGNORED)
    try:
        with open(os.path.join(root, IGNORE_FILE)) as f:
            patterns += f.read().splitlines()
    except FileNotFoundError:
        pass
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    entries = []
    total = 0
    for current, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirs[:] = sorted(d for d in dirs if not spec.match_file(rel_dir + d + "/")
                         and not os.path.islink(os.path.join(current, d)))
        for name in sorted(files):
            rel = rel_dir + name
            path = os.path.join(current, name)
            # A link is left out: it may point at the user's secrets (~/.aws/credentials).
            if spec.match_file(rel) or os.path.islink(path) or not os.path.isfile(path):
                continue
            total += os.path.getsize(path)
            if total > limit_mb * 1024 * 1024:
                raise click.BadParameter(
                    f"{directory}: more than {limit_mb} MB to ship; name what to leave out in "
                    f"{IGNORE_FILE} (.gitignore's syntax), or put large data in the file store",
                    param_hint="'--working-dir'")
            entries.append((rel, path))
    out = tempfile.mkdtemp(prefix="dmarket-workdir-")
    target = os.path.join(out, "workdir.zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, path in sorted(entries):
            info = zipfile.ZipInfo(rel, ZIP_TIME)
            info.external_attr = (os.stat(path).st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f, z.open(info, "w") as out:
                shutil.copyfileobj(f, out)
    return target


def env_wait(client, env, quiet=False):
    """Poll the environment until it is built or failed, showing its build's progress."""
    line = StatusLine()
    started = time.monotonic()
    while env["status"] == "BUILDING":
        if not quiet:
            last = (env.get("log_tail") or "").strip().splitlines()[-1:] or [""]
            line.show(f"building {env['key'][:12]} ({time.monotonic() - started:.0f} s): "
                      f"{last[0][:80]}")
        time.sleep(1)
        env = client.get(f"envs/{env['key']}/")
    line.close(keep=False)
    return env


@click.group(cls=Group, context_settings=CONTEXT, short_help="Python environments for jobs.")
@json_option
def env():
    """Python environments for jobs, built by the market from a requirements file (wheels
    from its package index), once per distinct set of requirements:

    \b
        dmarket env build -r requirements.txt envs/tf.tar.gz
        dmarket jobs submit train.py --env dmarket://envs/tf.tar.gz

    or let a job build (or reuse) one: dmarket jobs submit train.py -r requirements.txt.
    """


@env.command(context_settings=CONTEXT)
@click.option("-r", "--requirements", "requirements_file", required=True,
              type=click.Path(exists=True, dir_okay=False), help="A requirements.txt.")
@click.argument("name")
@json_option
@pass_context
def build(ctx, requirements_file, name):
    """Build (or reuse) the environment of REQUIREMENTS and store it as your file NAME
    (ending in .tar.gz), for jobs to name as --env dmarket://NAME."""
    if not name.endswith((".tar.gz", ".tgz")):
        raise click.BadParameter("a packed environment's name ends in .tar.gz",
                                 param_hint="'NAME'")
    client = ctx.client()
    with open(requirements_file) as f:
        text = f.read()
    started = time.monotonic()
    env = client.post("envs/", {"requirements": text})
    reused = env["status"] == "READY"
    env = env_wait(client, env, quiet=ctx.as_json)
    if env["status"] != "READY":
        raise Failure(f"the environment could not be built: {env.get('error', '')}")
    stored = client.post(f"envs/{env['key']}/save/", {"name": name.removeprefix("dmarket://")})
    result = {**{k: env.get(k) for k in ENV_FIELDS}, "uri": stored["uri"], "reused": reused,
              "seconds": round(time.monotonic() - started, 1)}
    if ctx.as_json:
        emit(ctx, result)
        return
    what = "reused the stored environment" if reused else "built"
    click.echo(f"{what} {env['key'][:12]} (Python {env['python']}, {env['platform']}, "
               f"{human_size(env['size'])}) in {result['seconds']} s; stored as {stored['uri']}")


@env.command(context_settings=CONTEXT)
@click.argument("key")
@json_option
@pass_context
def show(ctx, key):
    """An environment's state (KEY from `dmarket jobs show` or `env build --json`)."""
    emit(ctx, ctx.client().get(f"envs/{key}/"),
         names=ENV_FIELDS + ["requirements", "log_tail"])
