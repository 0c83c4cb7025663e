"""The client against a real server: pytest-django's live_server (the dmarket API on the test
database, in a thread of this process), driven through click's CliRunner."""

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from dmarket_client import cli as cli_module
from dmarket_client.cli import cli

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def jobs_dir(settings, tmp_path):
    # The live server runs in this process: its views see these settings.
    settings.DMARKET_JOBS_DIR = tmp_path / "jobs"
    settings.DMARKET_FILES_DIR = tmp_path / "files"
    # No Spark here: nothing listens on port 9 (discard), so Spark calls fail at once.
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:9"
    settings.DMARKET_HISTORY_URL = "http://127.0.0.1:9"
    return settings.DMARKET_JOBS_DIR


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(cli_module, "POLL_INTERVAL", 0.05)


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "config.json"
    monkeypatch.setenv("DMARKET_CONFIG", str(path))
    monkeypatch.delenv("DMARKET_SERVER", raising=False)
    monkeypatch.delenv("DMARKET_TOKEN", raising=False)
    return path


@pytest.fixture
def server(live_server):
    return live_server.url


def cli_runner():
    """A CliRunner whose result has stdout and stderr apart: click 8.1 needs mix_stderr=False
    for that; click 8.2 removed the argument (its results always have both apart)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


@pytest.fixture
def dmarket(server, config_file):
    """run(*args, input=None, env=None): the CLI with --server pointing at the live server."""
    runner = cli_runner()

    def run(*args, input=None, env=None, with_server=True):
        argv = (["--server", server] if with_server else []) + [str(a) for a in args]
        return runner.invoke(cli, argv, input=input, env=env, catch_exceptions=False)

    return run


@pytest.fixture
def dmarket_json(dmarket):
    """run(*args): `dmarket --json *args`; its output parsed (it must succeed)."""

    def run(*args, **kwargs):
        result = dmarket("--json", *args, **kwargs)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return json.loads(result.stdout)

    return run


@pytest.fixture
def user(dmarket, config_file):
    """ada, registered and logged in through the CLI itself."""
    from django.contrib.auth import get_user_model

    result = dmarket("register", "--username", "ada", "--email", "ada@example.org",
                     "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    saved = json.loads(config_file.read_text())
    return SimpleNamespace(username="ada", password=PASSWORD, token=saved["token"],
                           model=get_user_model().objects.get(username="ada"))


@pytest.fixture
def entry_file(tmp_path):
    path = tmp_path / "app.py"
    path.write_text("print('hello')\n")
    return str(path)


@pytest.fixture
def posted(monkeypatch):
    """The bodies the client POSTs, as [(path, body)], the requests still sent."""
    from dmarket_client.api import Client

    calls = []
    post = Client.post

    def recording(self, path, json=None):
        calls.append((path, json))
        return post(self, path, json)

    monkeypatch.setattr(Client, "post", recording)
    return calls
