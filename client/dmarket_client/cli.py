"""`dmarket`: the market's command-line client.

Every command prints a table or `name  value` lines for people, and JSON with --json (on the
command or before it). Exit codes: 0 done, 1 the server refused (its message is printed) or
could not be reached, 2 a usage error.
"""

import hashlib
import json as jsonlib
import os
import shutil
import sys
import time
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import click

from . import __version__, config
from .api import ApiError, Client
from .cli_shared import (CONTEXT, FINISHED, Failure, Group, StatusLine, for_people, gpu_amount,
                         progress_display, short_time)
from .context import Context, pass_context
from .env_cli import env, workdir_pack
from .files_cli import files, job_files_upload
from .infer_cli import cluster, infer
from .machine_cli import machine
from .output import emit, emit_json, fields, json_option, quiet_option, table
from .units import Duration, MemorySize

# Seconds between polls of `jobs log --follow` and `jobs watch`.
POLL_INTERVAL = 1.0

STATUSES = ["QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "LOST"]
LEDGER_KINDS = ["grant", "hold", "release", "charge", "earning", "refund", "adjustment"]
LOG_PAGE_LINES = 10000


@click.group("dmarket", cls=Group, context_settings=CONTEXT)
@click.option("--server", metavar="URL",
              help="The dmarket server (default: $DMARKET_SERVER, else the one you logged in "
                   f"to, else {config.DEFAULT_SERVER}).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.version_option(__version__, "--version", prog_name="dmarket")
@click.pass_context
def cli(ctx, server, as_json):
    """The dmarket compute market: run Spark jobs on shared machines, pay with credits.

    Start with `dmarket register` (or `dmarket login`), then `dmarket jobs submit app.py`.
    """
    obj = ctx.ensure_object(Context)
    obj.server_flag = server
    if as_json:
        obj.as_json = True


def main(argv=None):
    """The `dmarket` console script."""
    try:
        cli.main(args=argv, prog_name="dmarket")
    except ApiError as e:  # raised outside a command; the group converts those inside one
        click.echo(f"dmarket: {e.detail}", err=True)
        sys.exit(1)


# --- formatting ---------------------------------------------------------------------------

JOB_FIELDS = ["id", "name", "owner", "status", "status_reason", "cancel_requested", "entry_file",
              "libs", "archives", "files", "app_params", "conf", "main_class", "requirements",
              "environment", "env", "working_dir", "cores", "executor_memory_mb",
              "driver_memory_mb", "max_runtime", "machine_type", "gpus_per_executor",
              "gpus_per_task", "max_credits", "cost", "price_per_core_hour",
              "price_per_gpu_hour", "premium_rate", "submission_id",
              "spark_app_id", "exit_code", "created_at", "started_at", "finished_at",
              "settled_at"]
OPTIONAL_FIELDS = ("conf", "main_class", "requirements", "environment", "env", "working_dir",
                   "gpus_per_executor", "gpus_per_task")


def show_job(ctx, job):
    if ctx.as_json:
        emit_json(job)
    else:
        # What most jobs leave empty is shown only where a job has it.
        fields(for_people(job), [n for n in JOB_FIELDS if n in job
                                 and (job[n] or n not in OPTIONAL_FIELDS)])


def job_rows(jobs):
    return [dict(for_people(job), created=short_time(job["created_at"])) for job in jobs]


JOB_COLUMNS = [("id", "ID"), ("name", "NAME"), ("status", "STATUS"), ("cores", "CORES"),
               ("gpus_per_executor", "GPUS/EXECUTOR"), ("cost", "COST"),
               ("created", "CREATED")]


# --- accounts -----------------------------------------------------------------------------

def read_password(password_stdin, username, confirm):
    if password_stdin:
        if username is None:
            raise click.UsageError("--password-stdin needs --username.")
        text = sys.stdin.read()
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        if not text:
            raise click.UsageError("No password on standard input.")
        return text
    return click.prompt("Password", hide_input=True, confirmation_prompt=confirm)


def save_login(server, username, token):
    data = config.load()
    data.update(server=server, username=username, token=token)
    config.save(data)


def account_summary(ctx, server, user, message):
    if ctx.as_json:
        emit_json({"server": server, "user": user})
    else:
        click.echo(message)


@cli.command(context_settings=CONTEXT)
@click.option("--username", help="Your user name (prompted for when not given).")
@click.option("--email", default="", help="Your e-mail address (optional).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input instead of prompting for it.")
@json_option
@pass_context
def register(ctx, username, email, password_stdin):
    """Create an account on the server and log in to it.

    The server and your token are saved in the configuration file (readable by you only).
    """
    if username is None and not password_stdin:
        username = click.prompt("Username")
    password = read_password(password_stdin, username, confirm=True)
    client = ctx.client(auth=False)
    body = client.post("auth/register/",
                       {"username": username, "password": password, "email": email})
    save_login(client.server, body["user"]["username"], body["token"])
    account_summary(ctx, client.server, body["user"],
                    f"Registered and logged in as {body['user']['username']} on "
                    f"{client.server}.")


@cli.command(context_settings=CONTEXT, short_help="Log in and save the token.")
@click.option("--username", help="Your user name (prompted for when not given).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input instead of prompting for it.")
@json_option
@pass_context
def login(ctx, username, password_stdin):
    """Log in to the server and save the token in the configuration file."""
    if username is None and not password_stdin:
        username = click.prompt("Username")
    password = read_password(password_stdin, username, confirm=False)
    client = ctx.client(auth=False)
    body = client.post("auth/login/", {"username": username, "password": password})
    save_login(client.server, username, body["token"])
    user = ctx.closing(Client(client.server, body["token"])).get("auth/me/")
    account_summary(ctx, client.server, user,
                    f"Logged in as {user['username']} on {client.server}.")


@cli.command(context_settings=CONTEXT, short_help="Show who and where you are logged in.")
@json_option
@pass_context
def whoami(ctx):
    """Show the account you are logged in as, and on which server."""
    client = ctx.client()
    user = client.get("auth/me/")
    data = {"server": client.server, **user}
    if ctx.as_json:
        emit_json(data)
    else:
        fields(for_people(data), ["server", "username", "email", "id", "is_staff",
                                  "date_joined"])


@cli.command(context_settings=CONTEXT)
@json_option
@pass_context
def logout(ctx):
    """Forget the saved token (the server is remembered)."""
    data = config.load()
    server = ctx.server
    saved = (data.get("server") or "").rstrip("/")
    logged_in = bool(data.get("token")) and (not ctx.server_flag or saved == server)
    if logged_in:
        data.pop("token", None)
        data.pop("username", None)
        config.save(data)
        server = saved or server
    if ctx.as_json:
        emit_json({"server": server, "logged_out": logged_in})
    elif logged_in:
        click.echo(f"Logged out of {server}.")
    else:
        click.echo(f"Not logged in to {server}.")
    if os.environ.get("DMARKET_TOKEN"):
        click.echo("dmarket: DMARKET_TOKEN is still set in the environment and still used.",
                   err=True)


# --- jobs ---------------------------------------------------------------------------------

@cli.group(cls=Group, context_settings=CONTEXT, short_help="Submit and follow jobs.")
@json_option
def jobs():
    """Submit jobs and follow them: their state, driver log, results and executors."""


def spark_properties(ctx, param, values):
    """--conf KEY=VALUE, repeated: {KEY: VALUE}, a later KEY replacing an earlier one."""
    conf = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE.")
        conf[key] = setting
    return conf


@jobs.command(context_settings=CONTEXT)
@click.argument("entry_file")
@click.argument("params", nargs=-1)
@click.option("--name", help="The job's name (default: the entry file's name).")
@click.option("--lib", "libs", multiple=True, metavar="PATH|URI",
              help="A .py, .zip, .egg or .jar the application needs (repeatable).")
@click.option("--archive", "archives", multiple=True, metavar="PATH|URI[#ALIAS]",
              help="An archive unpacked in the executors' working directory (repeatable).")
@click.option("--file", "files", multiple=True, metavar="PATH|URI[#ALIAS]",
              help="A file put in the executors' working directory (repeatable).")
@click.option("--conf", "confs", multiple=True, metavar="KEY=VALUE", callback=spark_properties,
              help="A Spark property of the job's own, from the market's allowlist "
                   "(repeatable).")
@click.option("--class", "main_class", metavar="NAME",
              help="A JAR entry file's main class (default: its manifest's).")
@click.option("--cores", type=click.IntRange(min=1), help="Cores in all (default 1).")
@click.option("--executor-memory", type=MemorySize(),
              help="Memory of each executor: 512m, 4g, or megabytes (default 1g).")
@click.option("--driver-memory", type=MemorySize(),
              help="The driver's heap: 512m, 2g... (default: the market's, 1g); its sandbox "
                   "holds this plus an overhead for its Python.")
@click.option("--max-runtime", type=Duration(),
              help="Stop the job (as failed) after this long: 90, 30m, 2h, 1d (default: the "
                   "market's).")
@click.option("--machine-type", help="The type of machine to run on (default: gpu with "
              "--gpus-per-executor, else cpu; see `dmarket prices`).")
@click.option("--gpus-per-executor", type=click.IntRange(min=0),
              help="GPUs each executor holds (default 0), placed by Spark.")
@click.option("--gpus-per-task", type=click.FloatRange(min=0, min_open=True),
              help="GPUs each task holds: a whole number up to --gpus-per-executor, or a "
                   "fraction such as 0.5 or 0.25 to share one (default 1 with GPUs).")
@click.option("--max-credits", metavar="CREDITS",
              help="The most the job may cost; held from your credits while it runs "
                   "(default: the market's default cap).")
@click.option("--submission-id", metavar="ID",
              help="Makes the submit safe to retry: the same ID gives back the same job.")
@click.option("-r", "--requirements", "requirements_file", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="A requirements.txt: the job runs in an environment with these packages, "
                   "built by the market (or reused: the same requirements are built once).")
@click.option("--env", "env_name", metavar="NAME|URI",
              help="A packed environment in your store (from `dmarket env build`).")
@click.option("--working-dir", metavar="DIR",
              help="Ship DIR (less what its .dmarketignore names) as the driver's and "
                   "executors' working directory, on their sys.path.")
@click.option("--watch", is_flag=True, help="Then follow the job like `dmarket jobs watch`.")
@quiet_option
@json_option
@pass_context
def submit(ctx, entry_file, params, name, libs, archives, files, cores, executor_memory,
           driver_memory, max_runtime, machine_type, gpus_per_executor, gpus_per_task,
           max_credits, submission_id,
           requirements_file, env_name, working_dir, confs, main_class, watch):
    """Submit a job: ENTRY_FILE (a .py or .jar) run with PARAMS as its arguments.

    Put the application's own arguments after `--`; they reach it exactly as given (never
    through a shell):

        dmarket jobs submit pi.py --cores 4 -- 1000 --verbose

    Local files (the entry file, --lib, --archive, --file) are uploaded into your file
    store first, under job-files/, and the job names them as dmarket://NAME@VERSION; a file
    whose bytes your store already holds under the same file name is not sent again. URIs
    such as dmarket://NAME (see `dmarket files`), hdfs:// or https:// are passed unchanged
    (and file:///PATH, a path on the server, for operators). With --watch and --json only
    the final job is printed. With --quiet only the new job's id is (with --watch too: then
    the exit status tells how the job ended).
    """
    client = ctx.client()
    named = ([("'ENTRY_FILE'", entry_file, False)] + [("'--lib'", lib, False) for lib in libs]
             + [("'--archive'", archive, True) for archive in archives]
             + [("'--file'", f, True) for f in files])
    if requirements_file and env_name:
        raise click.UsageError("give --requirements or --env, not both")
    if working_dir:
        packed = workdir_pack(working_dir)
        named.append(("'--working-dir'", packed, False))
        try:
            uris = job_files_upload(client, named)
        finally:
            shutil.rmtree(os.path.dirname(packed), ignore_errors=True)
        uris, workdir_uri = uris[:-1], uris[-1]
    else:
        uris = job_files_upload(client, named)
    entry, uris = uris[0], uris[1:]
    body = {
        "name": name if name is not None else (
            PurePosixPath(entry_file.split("?")[0].rstrip("/")).stem or "job"),
        "entry_file": entry,
        "libs": uris[:len(libs)],
        "archives": uris[len(libs):len(libs) + len(archives)],
        "app_params": list(params),
    }
    if files:
        body["files"] = uris[len(libs) + len(archives):]
    if working_dir:
        body["working_dir"] = workdir_uri
    if requirements_file:
        with open(requirements_file) as f:
            body["requirements"] = f.read()
    if env_name:
        body["env"] = env_name if env_name.startswith("dmarket://") else f"dmarket://{env_name}"
    optional = {"cores": cores, "executor_memory_mb": executor_memory,
                "driver_memory_mb": driver_memory, "max_runtime": max_runtime,
                "machine_type": machine_type, "gpus_per_executor": gpus_per_executor,
                "gpus_per_task": None if gpus_per_task is None else gpu_amount(gpus_per_task),
                "max_credits": max_credits,
                "submission_id": submission_id, "conf": confs or None,
                "main_class": main_class}
    body.update({k: v for k, v in optional.items() if v is not None})
    job = client.post("jobs/", body)
    if ctx.quiet:
        click.echo(job["id"])
    if watch:
        if not ctx.as_json and not ctx.quiet:
            show_job(ctx, job)
            click.echo()
        watch_job(ctx, client, job["id"])
    elif not ctx.quiet:
        show_job(ctx, job)


@jobs.command("list", context_settings=CONTEXT)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(STATUSES, case_sensitive=False),
              help="Only jobs in this state (repeatable).")
@click.option("--all", "everyone", is_flag=True, help="Operators: every user's jobs.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="At most this many jobs, newest first.")
@json_option
@pass_context
def jobs_list(ctx, statuses, everyone, limit):
    """List your jobs, newest first."""
    params = {}
    if statuses:
        params["status"] = ",".join(statuses)
    if everyone:
        params["all"] = "true"
    rows = ctx.client().first("jobs/", limit, **params)
    if ctx.as_json:
        emit_json(rows)
    else:
        table(job_rows(rows), JOB_COLUMNS)


@jobs.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@json_option
@pass_context
def show(ctx, job_id):
    """Show a job."""
    show_job(ctx, ctx.client().get(f"jobs/{job_id}/"))


@jobs.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@json_option
@pass_context
def cancel(ctx, job_id):
    """Cancel a job: a queued one at once; a running one is stopped (and billed for the time
    it ran)."""
    client = ctx.client()
    job = client.post(f"jobs/{job_id}/cancel/")
    if ctx.as_json:
        emit_json(job)
    elif client.last_status == 202:
        click.echo(f"Job {job_id}: cancel requested ({job['status']}).")
    else:
        click.echo(f"Job {job_id}: {job['status']}.")


@jobs.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new lines until the job has finished.")
@click.option("--from", "start", type=click.IntRange(min=0), default=0, metavar="OFFSET",
              help="Start at this byte offset of the log.")
@json_option
@pass_context
def log(ctx, job_id, follow, start):
    """Print a job's driver log.

    With --json: one object {lines, offset, next, ended, status}; with --follow too, one such
    object a line for each batch of new lines.
    """
    client = ctx.client()
    position, lines, page = start, [], None
    while True:
        page = client.get(f"jobs/{job_id}/log/", **{"from": position, "size": LOG_PAGE_LINES})
        moved = page["next"] != position
        position = page["next"]
        if follow and ctx.as_json:
            if page["lines"] or page["ended"]:
                click.echo(jsonlib.dumps(page))
        elif ctx.as_json:
            lines.extend(page["lines"])
        else:
            for line in page["lines"]:
                click.echo(line)
        if page["ended"]:
            break
        if not follow:
            if not moved:
                break
            continue
        if len(page["lines"]) < LOG_PAGE_LINES:
            time.sleep(POLL_INTERVAL)
    if ctx.as_json and not follow:
        emit_json({"lines": lines, "offset": start, "next": position, "ended": page["ended"],
                   "status": page["status"]})


def download_target(root, path):
    """Where a result file goes under root; None for a path that would leave it."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or any(p in ("..", ".") for p in parts):
        return None
    return root.joinpath(*parts)


@jobs.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@click.option("--download", "directory", metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Fetch every result file into DIR, keeping subdirectories.")
@json_option
@pass_context
def results(ctx, job_id, directory):
    """List the files a job wrote as its results, or fetch them with --download."""
    client = ctx.client()
    files = list(client.pages(f"jobs/{job_id}/results/", page_size=500))
    if directory is not None:
        line = StatusLine()
        for item in files:
            target = download_target(directory, item["path"])
            if target is None:
                raise Failure(f"refusing the result path {item['path']!r}: it leaves {directory}")
            partial = target.with_name(target.name + ".part")
            progress = progress_display(line, item["path"])
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                client.download(f"jobs/{job_id}/results/{quote(item['path'])}", partial,
                                progress, digest=digest)
                # Recorded when the job ended (null before): the bytes must still be those.
                if item.get("sha256") and digest.hexdigest() != item["sha256"]:
                    raise Failure(f"{item['path']}: its SHA-256 is {digest.hexdigest()}, not "
                                  f"{item['sha256']} as recorded; not kept")
                os.replace(partial, target)
            except OSError as e:
                raise Failure(f"cannot write {target}: {e}") from None
            finally:
                line.close(keep=False)
                if partial.exists():
                    partial.unlink()
            item["local_path"] = str(target)
    if ctx.as_json:
        emit_json(files)
        return
    columns = [("path", "PATH"), ("size", "SIZE"), ("modified_at", "MODIFIED")]
    if directory is not None:
        columns.append(("local_path", "SAVED AS"))
    table([for_people(f) for f in files], columns)


def job_status_text(job):
    text = f"job {job['id']} ({job['name']}): {job['status']}"
    if job.get("status_reason"):
        text += f" ({job['status_reason']})"
    finished = job["status"] in FINISHED
    if job.get("cancel_requested") and not finished:
        text += ", cancel requested"
    text += f", cost {job['cost']}"
    if finished and not job.get("settled_at"):
        text += ", settling the bill"
    return text


def watch_job(ctx, client, job_id):
    """Follow a job until it has finished and its bill is settled; exit 0 if it succeeded."""
    status = StatusLine()
    try:
        while True:
            job = client.get(f"jobs/{job_id}/")
            if not ctx.quiet:
                status.show(job_status_text(job))
            if job["status"] in FINISHED and job.get("settled_at"):
                break
            time.sleep(POLL_INTERVAL)
    finally:
        status.close()
    if not ctx.quiet:
        show_job(ctx, job)
    click.get_current_context().exit(0 if job["status"] == "SUCCEEDED" else 1)


@jobs.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@json_option
@pass_context
def watch(ctx, job_id):
    """Follow a job until it has finished and been billed, then print it.

    Exits 0 when the job SUCCEEDED, 1 when it ended FAILED, LOST or CANCELLED (like
    `dmarket infer watch`).
    """
    watch_job(ctx, ctx.client(), job_id)


@jobs.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@json_option
@pass_context
def executors(ctx, job_id):
    """List the Spark executors a job ran: where, how many cores, how long."""
    rows = ctx.client().get(f"jobs/{job_id}/executors/")
    emit(ctx, rows if ctx.as_json else [for_people(r) for r in rows], columns=[
        ("id", "ID"), ("host", "HOST"), ("machine", "MACHINE"), ("cores", "CORES"),
        ("started_at", "STARTED"), ("ended_at", "ENDED"), ("core_seconds", "CORE-SECONDS"),
    ])


# --- credits ------------------------------------------------------------------------------

@cli.group(cls=Group, invoke_without_command=True, context_settings=CONTEXT,
           short_help="Your credits, and their history.")
@json_option
@pass_context
def credits(ctx):
    """Your credits: balance, held for unfinished jobs, available, earned, spent.

    `dmarket credits history` lists the ledger rows behind them.
    """
    if click.get_current_context().invoked_subcommand is None:
        data = ctx.client().get("credits/")
        emit(ctx, data, names=["balance", "held", "available", "earned", "spent"])


@credits.command(context_settings=CONTEXT)
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(LEDGER_KINDS, case_sensitive=False),
              help="Only rows of this kind (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="At most this many rows, newest first.")
@json_option
@pass_context
def history(ctx, kinds, limit):
    """List the movements of your credits, newest first."""
    params = {"kind": ",".join(kinds)} if kinds else {}
    rows = ctx.client().first("credits/transactions/", limit, **params)
    emit(ctx, rows if ctx.as_json else [for_people(r) for r in rows], columns=[
        ("id", "ID"), ("kind", "KIND"), ("amount", "AMOUNT"), ("held", "HELD"),
        ("balance_after", "BALANCE"), ("job", "JOB"), ("inference_job", "INFERENCE"),
        ("memo", "MEMO"),
        ("created_at", "CREATED"),
    ])


@cli.command(context_settings=CONTEXT,
             short_help="Show the prices of a core-hour and of a GPU-hour.")
@json_option
@pass_context
def prices(ctx):
    """Show what an hour of one core or one GPU costs, now and before the premium, and the
    machine types."""
    data = ctx.client().get("prices/")
    if ctx.as_json:
        emit_json(data)
        return
    effective = data.get("effective") or {}
    rows = [{"resource": name, "price": price, "now": effective.get(name)}
            for name, price in data["resources"].items()]
    table(rows, [("resource", "RESOURCE"), ("price", "PRICE"), ("now", "PRICE NOW")])
    click.echo()
    fields(for_people(data), ["machine_types", "unit", "premium_rate", "unfinished_jobs",
                              "online_machines", "default_job_cap", "signup_grant"])


cli.add_command(machine)
cli.add_command(infer)
cli.add_command(cluster)
cli.add_command(files)
cli.add_command(env)


if __name__ == "__main__":  # pragma: no cover
    main()
