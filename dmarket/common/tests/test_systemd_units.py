"""conf/systemd: a unit for the web server and one template for every daemon that
scripts/start_central_server.sh runs, each restarted on failure and running a command that
exists."""

import configparser
import re
from pathlib import Path

from django.core.management import get_commands

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
    assert "dmarket-web.service" in wants


def test_the_web_unit_runs_gunicorn_as_the_script_does():
    web = unit("dmarket-web.service")["Service"]
    assert web["ExecStart"].startswith("/opt/dmarket/.venv/bin/gunicorn dmarket.wsgi ")
    assert "--worker-class gthread" in web["ExecStart"]
    assert web["Restart"] == "on-failure"
    assert web["EnvironmentFile"] == "/etc/dmarket/dmarket.env"
