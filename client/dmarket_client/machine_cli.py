"""`dmarket machine ...`: share this computer as a Spark worker, and manage shared machines."""

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from . import config, gpus
from .agent import (SECRET_ENV, Agent, agent_env, agent_paths, agent_pid, agent_stop,
                    local_address, save_machine)
from .api import Client
from .context import pass_context
from .output import emit, json_option
from .units import MemorySize

MACHINE_COLUMNS = [("id", "ID"), ("name", "NAME"), ("address", "ADDRESS"), ("cores", "CORES"),
                   ("cores_in_use", "IN USE"), ("gpus", "GPUS"), ("memory_mb", "MEMORY MB"),
                   ("machine_type", "TYPE"), ("state", "STATE"), ("earned", "EARNED")]
DURATION = re.compile(r"^(\d+)([smhd])$")


def duration(text):
    match = DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: use e.g. 30m, 8h or 2d")
    number, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: number})


def gpu_addresses_option(ctx, param, value):
    if value is None:
        return None
    try:
        return gpus.parse_addresses(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def offered_addresses(count, given):
    """The GPU addresses to offer: the first `count` (default: all) of those given with
    --gpu-addresses, else of those found here. Offering more than there are is a usage error:
    an honest agent offers no GPU it cannot find."""
    if count == 0:
        return []
    available = given if given is not None else gpus.detect_gpus()
    if count is None:
        count = len(available)
    if count > len(available):
        where = "given with --gpu-addresses" if given is not None else "found on this computer"
        raise click.UsageError(f"--gpus {count}: only {len(available)} GPU(s) {where} "
                               f"({', '.join(available) or 'none'})")
    return available[:count]


@click.group()
def machine():
    """Share this machine with the market, and manage your shared machines."""


@machine.command()
@click.option("--cores", type=click.IntRange(min=1), required=True,
              help="Cores to offer; the worker never uses more.")
@click.option("--memory", type=MemorySize(), required=True,
              help="Memory to offer, e.g. 4g or 512m.")
@click.option("--gpus", "gpu_count", type=click.IntRange(min=0, max=64),
              help="GPUs to offer (default: every NVIDIA GPU nvidia-smi finds here).")
@click.option("--gpu-addresses", metavar="0,1,...", callback=gpu_addresses_option,
              help="The GPUs' addresses (nvidia-smi's indexes) to offer instead of those "
                   "found here; --gpus defaults to their number.")
@click.option("--type", "machine_type",
              help="Machine type (default: gpu with GPUs offered, else cpu; see `dmarket "
                   "prices`).")
@click.option("--share-for", help="Share for this long from now, e.g. 8h.")
@click.option("--share-between", help="Share every day between these UTC times, e.g. "
                                      "09:00-18:00.")
@click.option("--address", help="This machine's address as the cluster reaches it "
                                "(default: the one it reaches the server from).")
@click.option("--name", default="", help="A name for this machine.")
@click.option("--detach", is_flag=True, help="Run the agent in the background (pid file, log).")
@click.option("--spark-home", help="Spark to run the worker from (default: pyspark).")
@click.option("--no-sandbox", is_flag=True,
              help="Run the worker, and so strangers' code, WITHOUT its sandbox: as your own "
                   "user, seeing your home and files, with no memory cap. Only for a machine "
                   "that holds nothing of yours.")
@json_option
@pass_context
def add(ctx, cores, memory, gpu_count, gpu_addresses, machine_type, share_for, share_between,
        address, name, detach, spark_home, no_sandbox):
    """Register this machine and start its Spark worker with exactly what is offered.

    Your token is used for the registration only: the agent gets the machine's own token
    (good for its heartbeat only), kept in the machine's state file."""
    if share_for and share_between:
        raise click.UsageError("give --share-for or --share-between, not both")
    if machine_type == "cpu" and gpu_count is None and gpu_addresses is None:
        # A cpu machine offers no GPU, whatever this computer has.
        gpu_count = 0
    addresses = offered_addresses(gpu_count, gpu_addresses)
    client = ctx.client()
    body = {"cores": cores, "memory_mb": memory, "gpus": len(addresses),
            "address": address or local_address(client.server), "name": name,
            "sharing_window": share_between or ""}
    if machine_type is not None:
        # Else the server's default: gpu for a machine with GPUs, cpu for one without.
        body["machine_type"] = machine_type
    if share_for:
        body["share_until"] = (datetime.now(timezone.utc) + duration(share_for)).isoformat()
    registered = client.post("machines/", body)
    token = registered.pop("token", None)
    if not token:
        client.delete(f"machines/{registered['id']}/")
        raise click.ClickException("the server issued no machine token (it is older than this "
                                   "client); the machine was not added")
    if addresses:
        # The agent offers these same ones after a restart (whatever nvidia-smi numbers then).
        registered["gpu_addresses"] = addresses
    paths = save_machine(config.state_dir(), {**registered, "token": token,
                                              **({"no_sandbox": True} if no_sandbox else {})})
    # The cluster's secret stays in the state file: never on a terminal or in a script's log.
    shown = {**registered, "agent": {k: v for k, v in (registered.get("agent") or {}).items()
                                     if k != "spark_secret"}}
    if not detach:
        if not ctx.as_json:
            click.echo(f"machine {registered['id']} registered; sharing it (Ctrl-C to stop)")
        else:
            emit(ctx, shown)
        # The agent runs in this process's place, without the owner's token (in memory here,
        # perhaps in the environment).
        exec_agent(client.server, registered["id"], spark_home)
    shown["agent_pid"] = spawn_agent(client.server, registered["id"], spark_home)
    shown["agent_log"] = str(paths["log"])
    if ctx.as_json:
        emit(ctx, shown)
    else:
        click.echo(f"machine {registered['id']} registered; agent running in the background "
                   f"(pid {shown['agent_pid']}, log {paths['log']})")


def agent_argv(server, machine_id, spark_home=None):
    argv = [sys.executable, "-m", "dmarket_client", "--server", server,
            "machine", "run", str(machine_id)]
    if spark_home:
        argv += ["--spark-home", spark_home]
    return argv


def spawn_agent(server, machine_id, spark_home=None):
    """The agent as a background service: its own session, a pid file and a log; its
    environment without the owner's token."""
    paths = agent_paths(config.state_dir(), machine_id)
    with open(paths["log"], "ab") as log:
        child = subprocess.Popen(agent_argv(server, machine_id, spark_home), env=agent_env(),
                                 stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    paths["pid"].write_text(f"{child.pid}\n")
    return child.pid


def exec_agent(server, machine_id, spark_home=None):
    """The agent in the foreground, in this process's place (same pid, terminal and signals),
    with its environment without the owner's token. Does not return."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, agent_argv(server, machine_id, spark_home), agent_env())


def machine_token(machine_id, registered):
    """The machine token in a machine's state file."""
    token = registered.get("token")
    if not token:
        raise click.ClickException(
            f"machine {machine_id} was added by an older client and has no machine token: run "
            f"`dmarket machine remove {machine_id}`, then `dmarket machine add` again")
    return token


def run_agent(ctx, registered, spark_home=None):
    """The agent, here, with the machine's token only."""
    token = machine_token(registered["id"], registered)
    registered = {k: v for k, v in registered.items() if k != "token"}
    paths = agent_paths(config.state_dir(), registered["id"])
    paths["pid"].write_text(f"{os.getpid()}\n")
    try:
        client = ctx.closing(Client(ctx.server, token))
        def save_settings(agent_settings):
            save_machine(config.state_dir(), {**registered, "agent": agent_settings,
                                              "token": token})

        if registered.get("no_sandbox"):
            click.echo("WARNING: this machine's worker runs WITHOUT a sandbox (--no-sandbox): "
                       "strangers' code runs as your user, can read your home and files, and "
                       "has no memory cap.", err=True)

        agent = Agent(client, registered, paths["dir"], spark_home=spark_home,
                      log=lambda m: click.echo(f"{datetime.now():%H:%M:%S} {m}", err=True),
                      save_settings=save_settings,
                      sandbox=not registered.get("no_sandbox"))
        return agent.run()
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if agent_pid(config.state_dir(), registered["id"]) == os.getpid():
            paths["pid"].unlink(missing_ok=True)


@machine.command()
@click.argument("machine_id", type=int)
@click.option("--detach", is_flag=True, help="Run the agent in the background (pid file, log).")
@click.option("--spark-home", help="Spark to run the worker from (default: pyspark).")
@click.option("--no-sandbox", is_flag=True,
              help="Run the worker, and so strangers' code, WITHOUT its sandbox: as your own "
                   "user, seeing your home and files, with no memory cap. Only for a machine "
                   "that holds nothing of yours.")
@pass_context
def run(ctx, machine_id, detach, spark_home, no_sandbox):
    """Run the agent of a machine added from here before (e.g. after a reboot)."""
    path = agent_paths(config.state_dir(), machine_id)["machine"]
    if not path.exists():
        raise click.ClickException(f"machine {machine_id} was not added from this computer "
                                   f"({path} is missing)")
    running = agent_pid(config.state_dir(), machine_id)
    if running not in (None, os.getpid()):
        if detach:
            click.echo(f"machine {machine_id}'s agent runs already (pid {running})")
            return
        raise click.ClickException(f"machine {machine_id}'s agent runs already (pid {running})")
    registered = json.loads(path.read_text())
    machine_token(machine_id, registered)
    if no_sandbox and not registered.get("no_sandbox"):
        registered = {**registered, "no_sandbox": True}
        save_machine(config.state_dir(), registered)
    if detach:
        pid = spawn_agent(ctx.server, machine_id, spark_home)
        click.echo(f"machine {machine_id}'s agent running in the background (pid {pid})")
        return
    if any(name in os.environ for name in SECRET_ENV):
        # Started from a shell that holds the owner's token: the agent runs without it.
        exec_agent(ctx.server, machine_id, spark_home)
    sys.exit(run_agent(ctx, registered, spark_home))


def agent_unit(server, machine_id, spark_home=None):
    """A systemd user unit running the machine's agent in the foreground, restarted when it
    fails; SIGTERM (systemctl stop) stops its worker gracefully."""
    argv = [sys.executable, "-m", "dmarket_client", "--server", server, "machine", "run",
            str(machine_id)] + (["--spark-home", spark_home] if spark_home else [])
    env = {name: os.environ[name] for name in ("DMARKET_CONFIG", "DMARKET_STATE_DIR")
           if name in os.environ}
    lines = ["[Unit]", f"Description=dmarket agent of machine {machine_id} (a Spark worker)",
             "After=network-online.target", "Wants=network-online.target", "",
             "[Service]", "Type=simple",
             "ExecStart=" + " ".join(shlex.quote(a) for a in argv),
             *(["Environment=" + " ".join(shlex.quote(f"{k}={v}")
                                          for k, v in sorted(env.items()))] if env else []),
             "Restart=on-failure", "RestartSec=10", "KillMode=mixed", "TimeoutStopSec=60", "",
             "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


@machine.command(name="install-service")
@click.argument("machine_id", type=int)
@click.option("--spark-home", help="Spark to run the worker from (default: pyspark).")
@pass_context
def install_service(ctx, machine_id, spark_home):
    """Install a systemd user unit that runs MACHINE_ID's agent at login and restarts it
    when it fails (`loginctl enable-linger` keeps it running without a login)."""
    path = agent_paths(config.state_dir(), machine_id)["machine"]
    if not path.exists():
        raise click.ClickException(f"machine {machine_id} was not added from this computer "
                                   f"({path} is missing)")
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    unit = base / "systemd" / "user" / f"dmarket-machine-{machine_id}.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(agent_unit(ctx.server, machine_id, spark_home))
    click.echo(f"wrote {unit}; start it with:\n"
               f"  systemctl --user daemon-reload && systemctl --user enable --now {unit.name}")


@machine.command(name="list")
@click.option("--all", "show_removed", is_flag=True, help="Removed machines too.")
@json_option
@pass_context
def list_(ctx, show_removed):
    """Your shared machines, their state, cores in use and earnings."""
    params = {"state": "ONLINE,OFFLINE,PAUSED,REMOVED"} if show_removed else {}
    emit(ctx, list(ctx.client().pages("machines/", **params)), MACHINE_COLUMNS)


@machine.command()
@click.argument("machine_id", type=int, required=False)
@json_option
@pass_context
def status(ctx, machine_id):
    """The machines shared from this computer: the market's view and the local agent."""
    base = config.state_dir()
    ids = [machine_id] if machine_id else sorted(
        int(p.name.split("-", 1)[1]) for p in base.glob("machine-*") if p.is_dir()
    ) if base.exists() else []
    client = ctx.client()
    rows = []
    for mid in ids:
        row = dict(client.get(f"machines/{mid}/"))
        row["agent_pid"] = agent_pid(base, mid)
        row["agent_log"] = str(agent_paths(base, mid)["log"])
        rows.append(row)
    if machine_id:
        emit(ctx, rows[0], names=[n for n, _ in MACHINE_COLUMNS] + [
            "worker_state", "worker_id", "last_heartbeat", "agent_pid", "agent_log"])
    else:
        emit(ctx, rows, MACHINE_COLUMNS + [("agent_pid", "AGENT PID")])


@machine.command()
@click.argument("machine_id", type=int)
@json_option
@pass_context
def remove(ctx, machine_id):
    """Stop sharing: stop the agent and its worker gracefully, then deregister the machine."""
    stopped = agent_stop(config.state_dir(), machine_id)
    ctx.client().delete(f"machines/{machine_id}/")
    result = {"id": machine_id, "state": "REMOVED", "agent_stopped": stopped}
    if ctx.as_json:
        emit(ctx, result)
    else:
        click.echo(f"machine {machine_id} removed" + (" (its agent and worker stopped)"
                                                     if stopped else ""))
