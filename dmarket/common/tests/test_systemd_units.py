"""conf/systemd: a unit for the web server and one template for every daemon that
scripts/start_central_server.sh runs, each restarted on failure and running a command that
exists."""

import configparser
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command, get_commands

from dmarket.common.front import nginx_binary

ROOT = Path(__file__).resolve().parents[3]
UNITS = ROOT / "conf" / "systemd"


def unit(name):
    parsed = configparser.ConfigParser(interpolation=None, strict=False)
    parsed.optionxform = str
    parsed.read_string((UNITS / name).read_text())
    return parsed


def started_daemons():
    script = (ROOT / "scripts" / "start_central_server.sh").read_text()
    return re.search(r"^DAEMONS=\((.*)\)$", script, re.M).group(1).split()


def test_every_daemon_the_scripts_start_has_a_unit_and_a_command():
    daemons = started_daemons()
    assert daemons == ["launcher", "billing", "monitor", "inference"]
    commands = get_commands()
    template = unit("dmarket-daemon@.service")
    assert template["Service"]["ExecStart"].endswith("manage.py %i --loop")
    assert template["Service"]["Restart"] == "on-failure"
    assert template["Service"]["KillMode"] == "process"
    wants = unit("dmarket.target")["Unit"]["Wants"].split()
    for daemon in daemons:
        assert daemon in commands
        assert f"dmarket-daemon@{daemon}.service" in wants
    for service in ("dmarket-web.service", "dmarket-heartbeat.service",
                    "dmarket-front.service"):
        assert service in wants


def test_the_web_unit_runs_gunicorn_as_the_script_does():
    web = unit("dmarket-web.service")["Service"]
    assert web["ExecStart"].startswith("/opt/dmarket/.venv/bin/gunicorn dmarket.wsgi ")
    assert "--worker-class gthread" in web["ExecStart"]
    assert web["Restart"] == "on-failure"
    assert web["EnvironmentFile"] == "/etc/dmarket/dmarket.env"


def test_the_heartbeat_pool_and_the_front_are_units_as_the_script_starts_them():
    web = shlex.split(unit("dmarket-web.service")["Service"]["ExecStart"])
    beat = unit("dmarket-heartbeat.service")["Service"]
    front = unit("dmarket-front.service")["Service"]
    assert web[web.index("--bind") + 1] == "unix:/run/dmarket/web.sock"
    command = shlex.split(beat["ExecStart"])
    assert command[:2] == ["/opt/dmarket/.venv/bin/gunicorn", "dmarket.wsgi"]
    assert command[command.index("--worker-class") + 1] == "sync"
    assert command[command.index("--bind") + 1] == "unix:/run/dmarket/beat.sock"
    conf = shlex.split(front["ExecStartPre"])
    assert conf[:3] == ["/opt/dmarket/.venv/bin/python", "manage.py", "front_conf"]
    assert conf[conf.index("--web-socket") + 1] == "/run/dmarket/web.sock"
    assert conf[conf.index("--beat-socket") + 1] == "/run/dmarket/beat.sock"
    assert shlex.split(front["ExecStart"])[0] == "/usr/sbin/nginx"
    for service in (unit("dmarket-web.service")["Service"], beat, front):
        assert service["Restart"] == "on-failure"
        # The sockets' directory: the server's user's alone, kept while another unit runs.
        assert (service["RuntimeDirectory"], service["RuntimeDirectoryMode"],
                service["RuntimeDirectoryPreserve"]) == ("dmarket", "0700", "yes")


def test_nginx_accepts_the_configuration_the_front_unit_writes(tmp_path):
    nginx = nginx_binary()
    if not os.access(nginx, os.X_OK):
        pytest.skip("nginx is not installed (install.sh installs it as root)")
    front = unit("dmarket-front.service")["Service"]
    args = [a.replace("/run/dmarket", str(tmp_path))
            .replace("${DMARKET_BIND}:${DMARKET_PORT}", "127.0.0.1:8000")
            for a in shlex.split(front["ExecStartPre"])[3:]]
    call_command("front_conf", *args)
    checked = subprocess.run([nginx, "-t", "-e", "stderr", "-p", str(tmp_path),
                              "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr
