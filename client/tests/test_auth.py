"""register, login, whoami, logout; the configuration file and its environment overrides."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

PASSWORD = "correct horse battery"


def test_register_saves_the_server_and_token(dmarket, server, config_file):
    result = dmarket("register", "--username", "ada", "--email", "ada@example.org",
                     "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Registered and logged in as ada on {server}.\n"
    assert result.stderr == ""
    saved = json.loads(config_file.read_text())
    assert set(saved) == {"server", "username", "token"}
    assert saved["server"] == server and saved["username"] == "ada"
    assert len(saved["token"]) == 40
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600

    from dmarket.accounts.models import ApiToken, key_digest
    assert ApiToken.objects.get(digest=key_digest(saved["token"])).user.email == "ada@example.org"


def test_register_prompts_for_the_password_twice(dmarket, server):
    result = dmarket("register", input=f"bea\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("Username: bea\nPassword: \nRepeat for confirmation: \n"
                             f"Registered and logged in as bea on {server}.\n")


def test_register_json(dmarket_json, server):
    body = dmarket_json("register", "--username", "ada", "--password-stdin",
                        input=PASSWORD + "\n")
    assert body["server"] == server
    assert {k: body["user"][k] for k in ("username", "email", "is_staff")} == {
        "username": "ada", "email": "", "is_staff": False}
    assert "token" not in json.dumps(body)


def test_register_refusals_print_the_servers_detail(dmarket, user):
    result = dmarket("register", "--username", "ADA", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "dmarket: username: This username is taken.\n"

    result = dmarket("register", "--username", "bob", "--password-stdin", input="short\n")
    assert result.exit_code == 1
    assert result.stderr == ("dmarket: password: This password is too short. It must contain "
                             "at least 8 characters.\n")


def test_password_stdin_needs_a_username(dmarket):
    result = dmarket("login", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 2
    assert "--password-stdin needs --username." in result.stderr


def test_login_saves_a_token(dmarket, user, server, config_file):
    config_file.unlink()
    result = dmarket("login", "--username", "ada", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Logged in as ada on {server}.\n"
    saved = json.loads(config_file.read_text())
    # A new token (the server keeps only digests, so it cannot give back register's).
    assert saved == {"server": server, "username": "ada", "token": saved["token"]}
    assert len(saved["token"]) == 40 and saved["token"] != user.token
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600
    result = dmarket("whoami", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["username"] == "ada"


def test_login_prompts(dmarket, user, server):
    result = dmarket("login", input=f"ada\n{PASSWORD}\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Username: ada\nPassword: \nLogged in as ada on {server}.\n"


def test_login_json(dmarket_json, user, server):
    body = dmarket_json("login", "--username", "ada", "--password-stdin", input=PASSWORD)
    assert body["server"] == server
    assert body["user"]["username"] == "ada" and body["user"]["id"] == user.model.pk


def test_wrong_password(dmarket, user, config_file):
    before = config_file.read_text()
    result = dmarket("login", "--username", "ada", "--password-stdin", input="wrong password")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "dmarket: Wrong username or password.\n"
    assert config_file.read_text() == before


def test_whoami(dmarket, user, server):
    result = dmarket("whoami")
    assert result.exit_code == 0, result.stderr
    joined = user.model.date_joined.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert result.stdout == (f"server       {server}\n"
                             "username     ada\n"
                             "email        ada@example.org\n"
                             f"id           {user.model.pk}\n"
                             "is_staff     no\n"
                             f"date_joined  {joined}\n")


def test_whoami_json(dmarket_json, user, server):
    body = dmarket_json("whoami")
    assert body.pop("date_joined").startswith(user.model.date_joined.strftime("%Y-%m-%dT"))
    assert body == {"server": server, "id": user.model.pk, "username": "ada",
                    "email": "ada@example.org", "is_staff": False}


def test_json_before_the_command(dmarket, user):
    result = dmarket("--json", "whoami")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["username"] == "ada"


def test_not_logged_in(dmarket, server):
    result = dmarket("whoami")
    assert result.exit_code == 1
    assert result.stderr == (f"dmarket: not logged in to {server}: run `dmarket login` or "
                             "`dmarket register` (or set DMARKET_TOKEN)\n")


def test_a_bad_token(dmarket, user, config_file):
    saved = json.loads(config_file.read_text())
    config_file.write_text(json.dumps(dict(saved, token="0" * 40)))
    result = dmarket("whoami")
    assert result.exit_code == 1
    assert result.stderr == "dmarket: Invalid token.\n"


def test_logout(dmarket, user, server, config_file):
    result = dmarket("logout")
    assert result.exit_code == 0
    assert result.stdout == f"Logged out of {server}.\n"
    assert json.loads(config_file.read_text()) == {"server": server}
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600

    result = dmarket("whoami")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"dmarket: not logged in to {server}")

    result = dmarket("logout", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"server": server, "logged_out": False}

    # The saved server is still the default.
    result = dmarket("whoami", with_server=False)
    assert result.stderr.startswith(f"dmarket: not logged in to {server}")


def test_environment_overrides(dmarket, user, server, config_file):
    # DMARKET_SERVER and DMARKET_TOKEN alone, without a configuration file.
    config_file.unlink()
    result = dmarket("whoami", "--json", with_server=False,
                     env={"DMARKET_SERVER": server, "DMARKET_TOKEN": user.token})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["username"] == "ada"

    # They win over what the file says: a server that does not answer, a token that is wrong.
    config_file.write_text(json.dumps({"server": "http://127.0.0.1:9", "token": "0" * 40}))
    result = dmarket("whoami", "--json", with_server=False,
                     env={"DMARKET_SERVER": server, "DMARKET_TOKEN": user.token})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) | {"date_joined": None} == {
        "server": server, "id": user.model.pk, "username": "ada", "email": "ada@example.org",
        "is_staff": False, "date_joined": None}

    # Without the overrides, the file's server is used, and its failure reported.
    result = dmarket("whoami", with_server=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "dmarket: cannot reach the server at http://127.0.0.1:9: ")


def test_server_flag_wins_over_the_environment(dmarket, user):
    result = dmarket("whoami", "--json", env={"DMARKET_SERVER": "http://127.0.0.1:9"})
    assert result.exit_code == 0, result.stderr


def test_logout_warns_about_the_environment_token(dmarket, user):
    result = dmarket("logout", env={"DMARKET_TOKEN": user.token})
    assert result.exit_code == 0
    assert result.stderr == ("dmarket: DMARKET_TOKEN is still set in the environment and "
                             "still used.\n")


def test_help_and_version(dmarket):
    for command in (["--help"], ["register", "--help"], ["login", "--help"],
                    ["whoami", "--help"], ["logout", "--help"]):
        result = dmarket(*command)
        assert result.exit_code == 0 and result.stdout.startswith("Usage: "), command
    result = dmarket("--version")
    assert result.stdout == "dmarket, version 0.1.0\n"


def test_unknown_command_is_a_usage_error(dmarket):
    result = dmarket("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'." in result.stderr


def test_the_console_script(server, user, config_file):
    """The installed `dmarket` itself, in a process of its own."""
    script = Path(sys.executable).parent / "dmarket"
    env = dict(os.environ, DMARKET_CONFIG=str(config_file))

    def run(*args):
        return subprocess.run([str(script), *args], capture_output=True, text=True, env=env,
                              timeout=60)

    done = run("--server", server, "whoami", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["username"] == "ada"

    done = run("--server", server, "jobs", "show", "999999999")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "dmarket: No Job matches the given query.\n"

    done = run("--server", "http://127.0.0.1:9", "prices")
    assert done.returncode == 1
    assert done.stderr.startswith("dmarket: ")

    done = run("jobs", "list", "--limit", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("Usage: dmarket jobs list [OPTIONS]")

    assert run("--version").stdout == "dmarket, version 0.1.0\n"
