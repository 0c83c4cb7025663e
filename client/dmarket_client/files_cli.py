"""`dmarket files ...`: the market's file store. Upload code and data once; jobs name them
as dmarket://NAME[@VERSION] and every machine of the cluster fetches them from the server."""

import glob
import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import click
import requests

from .api import file_sha256
from .cli_shared import (CONTEXT, Failure, Group, StatusLine, for_people, human_size,
                         progress_display)
from .context import pass_context
from .output import emit, emit_json, fields, json_option, table

FILE_COLUMNS = [("name", "NAME"), ("version", "VERSION"), ("size", "SIZE"),
                ("created_at", "CREATED"), ("public", "PUBLIC"), ("sha256", "SHA-256")]
FILE_FIELDS = ["uri", "owner", "name", "version", "size", "sha256", "public", "created_at"]
WILDCARDS = set("*?[")


def parse_ref(text):
    """'NAME', 'NAME@3', '~ada/NAME@3' or a dmarket:// URI -> (owner, name, version)."""
    if text.startswith("dmarket://"):
        text = text[len("dmarket://"):]
    owner = None
    if text.startswith("~"):
        owner, sep, text = text[1:].partition("/")
        if not owner or not sep:
            raise click.BadParameter("write another user's file as ~USER/NAME")
    name, sep, version = text.rpartition("@")
    if not sep:
        return owner, text, None
    if not version.isdigit() or int(version) < 1:
        raise click.BadParameter(f"{version!r} is not a version number (1, 2, ...)")
    return owner, name, int(version)


class FileRef(click.ParamType):
    name = "NAME[@VERSION]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_ref(value)
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)


def file_url(name):
    # Checked here because a URL would resolve '.' and '..' away and name another file.
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise click.BadParameter(f"{name!r}: a file name is segments separated by '/', none "
                                 "of them empty, '.' or '..'", param_hint="NAME")
    return "files/" + quote(name)


def show_rows(ctx, rows):
    if ctx.as_json:
        emit_json(rows)
    else:
        table([dict(for_people(r), size=human_size(r["size"])) for r in rows], FILE_COLUMNS)


def show_version(ctx, version):
    if ctx.as_json:
        emit_json(version)
    else:
        fields(for_people(version), FILE_FIELDS)


def check_room(client, size):
    """Refuse here what the server would refuse: its answer would come only after the whole
    body was sent (a server may read and drop a refused body to keep the connection)."""
    usage = client.get("files/usage/")
    if size > usage["available"]:
        raise Failure(
            f"Storing {size} more bytes would bring your files to {usage['used'] + size} "
            f"bytes, over your quota of {usage['quota']} bytes "
            f"({usage['quota'] // (1024 * 1024)} MB; you use {usage['used']} bytes). "
            "Delete old versions with `dmarket files rm NAME@VERSION`.")


def put_one(client, local, name, public, line):
    """Upload one local file as a new version of NAME; returns the server's answer."""
    try:
        sha256 = file_sha256(local)
    except OSError as e:
        raise Failure(f"cannot read {local}: {e}") from None
    params = {} if public is None else {"public": "true" if public else "false"}
    try:
        return client.upload(file_url(name), local, sha256, params=params,
                             progress=progress_display(line, name))
    finally:
        line.close(keep=False)


# Where `dmarket jobs submit` keeps the local files a job names: one name per content (the
# first 16 hex digits of its SHA-256) and file name, which Spark gives the fetched copy.
JOB_FILES = "job-files"
SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def job_file_name(sha256, basename):
    return f"{JOB_FILES}/{sha256[:16]}/{basename}"


def held_version(client, sha256, basename):
    """A version of one of the user's files with these bytes and this file name (the
    job-files name first), or None: the store holds them already."""
    rows = [r for r in client.pages("files/", page_size=500, sha256=sha256)
            if PurePosixPath(r["name"]).name == basename]
    rows.sort(key=lambda r: r["name"] != job_file_name(sha256, basename))
    return rows[0] if rows else None


def job_files_upload(client, named):
    """The job's files as the server takes them: each local file (a path; '#alias' kept)
    uploaded into the user's store unless a file there holds its bytes already, and named
    dmarket://NAME@VERSION; URIs (dmarket://, https://, hdfs://, file://...) unchanged.

    `named` is [(option, value, aliased)]; returns the values in the same order."""
    local = {}  # path -> (size, sha256, basename, the version if held)
    plan = []
    for option, value, aliased in named:
        if not value or URI_SCHEME.match(value):
            plan.append((value, None, ""))
            continue
        base, sep, alias = value.rpartition("#") if aliased and "#" in value else (value, "", "")
        path = os.path.abspath(os.path.expanduser(base))
        if path not in local:
            if not os.path.isfile(path):
                raise click.BadParameter(
                    f"{base}: no such file here (a local file is uploaded into your store; a "
                    "URI such as dmarket://NAME or https://... is passed as it is)",
                    param_hint=option)
            basename = os.path.basename(path)
            if not SEGMENT.match(basename):
                raise click.BadParameter(
                    f"{base}: the file store cannot keep the name {basename!r} (letters, "
                    "digits, '.', '_' and '-' only); rename the file", param_hint=option)
            try:
                size, sha256 = os.path.getsize(path), file_sha256(path)
            except OSError as e:
                raise Failure(f"cannot read {path}: {e}") from None
            local[path] = (size, sha256, basename, held_version(client, sha256, basename))
        plan.append((None, path, sep + alias))
    missing = {p: info for p, info in local.items() if info[3] is None}
    if missing:
        check_room(client, sum(info[0] for info in missing.values()))
    line = StatusLine()
    for path, (size, sha256, basename, _) in missing.items():
        version = put_one(client, path, job_file_name(sha256, basename), None, line)
        local[path] = (size, sha256, basename, version)
    return [value if path is None else local[path][3]["uri"] + alias
            for value, path, alias in plan]


@click.group(cls=Group, context_settings=CONTEXT, short_help="Store code and data for jobs.")
@json_option
def files():
    """Your files in the market's store: every upload is a new version, with its size and
    SHA-256. Jobs name them as dmarket://NAME (the latest version when submitted) or
    dmarket://NAME@VERSION, in entry files, --lib, --archive and --file:

    \b
        dmarket files put train.py mnist/train.py
        dmarket jobs submit dmarket://mnist/train.py --archive dmarket://mnist/data.zip#data

    Another user's public file is ~USER/NAME (dmarket://~USER/NAME in jobs). `dmarket jobs
    submit` puts the local files a job names here itself, under job-files/.
    """


@files.command(context_settings=CONTEXT)
@click.argument("local", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("name")
@click.option("--public/--private", default=None,
              help="Let every user read and use it, or only you (default: as it was; "
                   "private for a new file).")
@json_option
@pass_context
def put(ctx, local, name, public):
    """Upload LOCAL as a new version of NAME (streamed, with a progress bar on a terminal)."""
    client = ctx.client()
    file_url(name)
    check_room(client, local.stat().st_size)
    show_version(ctx, put_one(client, local, name, public, StatusLine()))


def fixed_base(pattern):
    """The directory a glob pattern starts from: its leading parts without wildcards."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if WILDCARDS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


@files.command("put-many", context_settings=CONTEXT)
@click.argument("pattern", metavar="GLOB")
@click.argument("prefix")
@click.option("--public/--private", default=None, help="As for `put`.")
@json_option
@pass_context
def put_many(ctx, pattern, prefix, public):
    """Upload every file matching GLOB (quote it; ** for subdirectories) under PREFIX,
    keeping their paths below the pattern's first wildcard:

    \b
        dmarket files put-many 'data/**/*.csv' datasets   # data/a/x.csv -> datasets/a/x.csv
    """
    matches = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                     if os.path.isfile(p))
    if not matches:
        raise Failure(f"no file matches {pattern}")
    base = fixed_base(os.path.expanduser(pattern))
    client = ctx.client()
    check_room(client, sum(os.path.getsize(p) for p in matches))
    line = StatusLine()
    uploaded = []
    for local in matches:
        relative = PurePosixPath(*Path(os.path.relpath(local, base)).parts)
        name = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else str(relative)
        version = put_one(client, local, name, public, line)
        uploaded.append(dict(version, local_path=local))
        if not ctx.as_json:
            click.echo(f"{local} -> {version['uri']} ({human_size(version['size'])})")
    if ctx.as_json:
        emit_json(uploaded)


def ref_params(owner, version=None):
    params = {}
    if owner:
        params["owner"] = owner
    if version is not None:
        params["version"] = version
    return params


@files.command(context_settings=CONTEXT)
@click.argument("ref", metavar="NAME[@VERSION]", type=FileRef())
@click.argument("local", required=False, type=click.Path(path_type=Path))
@json_option
@pass_context
def get(ctx, ref, local):
    """Download a file (the latest version unless @VERSION) to LOCAL (default: its own name
    here; into LOCAL if it is a directory). Its SHA-256 is checked before it is kept."""
    owner, name, version = ref
    target = local if local is not None else Path(PurePosixPath(name).name)
    if target.is_dir():
        target = target / PurePosixPath(name).name
    partial = target.with_name(target.name + ".part")
    client = ctx.client()
    line = StatusLine()
    digest = hashlib.sha256()
    try:
        size, headers = client.download(file_url(name), partial,
                                        progress_display(line, name),
                                        params=ref_params(owner, version), digest=digest)
        expected = headers.get("X-Content-SHA256")
        if expected and digest.hexdigest() != expected:
            raise Failure(f"{name}: the download's SHA-256 is {digest.hexdigest()}, not "
                          f"{expected}; nothing was kept (try again)")
        os.replace(partial, target)
    except requests.RequestException:
        # An OSError too, but the connection's, not the disk's: the group reports it.
        raise
    except OSError as e:
        raise Failure(f"cannot write {target}: {e}") from None
    finally:
        line.close(keep=False)
        if partial.exists():
            partial.unlink()
    data = {"name": name, "version": int(headers.get("X-File-Version") or 0), "size": size,
            "sha256": digest.hexdigest(), "local_path": str(target)}
    if ctx.as_json:
        emit_json(data)
    else:
        click.echo(f"{name}@{data['version']} -> {target} ({human_size(size)})")


@files.command(context_settings=CONTEXT)
@click.argument("ref", metavar="NAME", type=FileRef())
@click.option("-n", "count", type=click.IntRange(min=1, max=500), default=None,
              help="Only the last N versions.")
@json_option
@pass_context
def versions(ctx, ref, count):
    """List the versions of a file, newest first."""
    owner, name, version = ref
    if version is not None:
        raise click.BadParameter("give a name without @VERSION", param_hint="NAME")
    file_url(name)  # refuses a name that the URL would change ('..' would name another file)
    client = ctx.client()
    path = "file-versions/" + quote(name)
    params = ref_params(owner)
    if count is not None:
        rows = client.get(path, page_size=count, **params)["results"]
    else:
        rows = list(client.pages(path, page_size=500, **params))
    show_rows(ctx, rows)


@files.command(context_settings=CONTEXT)
@click.argument("ref", metavar="NAME[@VERSION]", type=FileRef())
@json_option
@pass_context
def where(ctx, ref):
    """Say which storage servers hold copies of a file (the latest version without
    @VERSION), and how many whole copies can be read now."""
    owner, name, version = ref
    file_url(name)  # refuses a name that the URL would change ('..' would name another file)
    answer = ctx.client().get("file-replicas/" + quote(name), **ref_params(owner, version))
    if ctx.as_json:
        emit_json(answer)
        return
    click.echo(f"{answer['name']}@{answer['version']}: {answer['copies']} "
               f"{'copy' if answer['copies'] == 1 else 'copies'} readable now "
               f"({answer['storage']})")
    rows = [{**server, "volumes": ",".join(str(v) for v in server["volumes"]) or "-",
             "alive": "yes" if server["alive"] else "NO"} for server in answer["servers"]]
    table(rows, [("server", "SERVER"), ("alive", "ALIVE"), ("volumes", "VOLUMES"),
                 ("chunks", "CHUNKS")])


@files.command("ls", context_settings=CONTEXT)
@click.argument("pattern", required=False)
@click.option("--owner", metavar="USER", help="Another user's public files.")
@json_option
@pass_context
def ls(ctx, pattern, owner):
    """List your files (the latest version of each), or those whose names match PATTERN
    (* and ?; quote it). `where` says which storage servers hold a file."""
    rows = list(ctx.client().pages("files/", page_size=500, pattern=pattern, owner=owner))
    show_rows(ctx, rows)


@files.command(context_settings=CONTEXT)
@click.argument("ref", metavar="NAME[@VERSION]", type=FileRef())
@json_option
@pass_context
def rm(ctx, ref):
    """Delete one version of a file, or every version without @VERSION. A version that a
    queued or running job uses cannot be deleted until the job has finished."""
    owner, name, version = ref
    if owner:
        raise click.BadParameter("you can delete only your own files", param_hint="NAME")
    client = ctx.client()
    path = file_url(name) + (f"?version={version}" if version is not None else "")
    answer = client.delete(path)
    if ctx.as_json:
        emit_json(answer)
    else:
        numbers = ", ".join(str(n) for n in answer["deleted_versions"])
        word = "version" if len(answer["deleted_versions"]) == 1 else "versions"
        click.echo(f"Deleted {name}: {word} {numbers}.")


def set_public(ctx, name, public):
    version = ctx.client().request("PATCH", file_url(name), json={"public": public})
    emit(ctx, for_people(version) if not ctx.as_json else version, names=FILE_FIELDS)


@files.command(context_settings=CONTEXT)
@click.argument("name")
@json_option
@pass_context
def publish(ctx, name):
    """Make a file public: every user may read it and name it in jobs as
    dmarket://~YOU/NAME (every version, until `unpublish`)."""
    set_public(ctx, name, True)


@files.command(context_settings=CONTEXT)
@click.argument("name")
@json_option
@pass_context
def unpublish(ctx, name):
    """Make a file private again: only you may read it."""
    set_public(ctx, name, False)


@files.command(context_settings=CONTEXT)
@json_option
@pass_context
def usage(ctx):
    """Show what your files take (every version counts) and what your quota leaves."""
    data = ctx.client().get("files/usage/")
    if ctx.as_json:
        emit_json(data)
    else:
        fields({**data, **{k: f"{human_size(data[k])} ({data[k]} bytes)"
                           for k in ("used", "quota", "available")}},
               ["used", "quota", "available", "files", "versions"])
