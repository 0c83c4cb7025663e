"""dmarket machine add / run / remove and the agent's token: the agent gets its machine's own
token (kept in its state file, mode 600), never the owner's, and neither token reaches the
worker's environment. No Spark here: the agent's processes are recorded, not started."""

import json
import stat
import sys

import pytest

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.machines.models import Machine
from dmarket_client import agent as agent_module
from dmarket_client import machine_cli
from dmarket_client.agent import Agent
from dmarket_client.api import ApiError, Client

# Past any pid_max: no process has it, so no agent of the machine seems to run.
NO_PID = 2 ** 31 - 1
ADD = ["machine", "add", "--cores", "2", "--memory", "1g", "--address", "127.0.0.9"]


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "state"
    monkeypatch.setenv("DMARKET_STATE_DIR", str(path))
    return path


class Spawned:
    """subprocess.Popen as machine_cli uses it, recorded: the agent is not started."""

    def __init__(self):
        self.calls = []

    pid = NO_PID

    def __call__(self, argv, env=None, **kwargs):
        self.calls.append({"argv": argv, "env": env, **kwargs})
        return self


@pytest.fixture
def spawned(monkeypatch):
    spawned = Spawned()
    monkeypatch.setattr(machine_cli.subprocess, "Popen", spawned)
    return spawned


@pytest.fixture
def execed(monkeypatch):
    """os.execve recorded: the command that would replace the process ends there (exit 0)."""
    calls = []

    def execve(path, argv, env):
        calls.append({"path": path, "argv": argv, "env": env})
        raise SystemExit(0)

    monkeypatch.setattr(machine_cli.os, "execve", execve)
    return calls


def state_file(state_dir, machine_id):
    return state_dir / f"machine-{machine_id}" / "machine.json"


def heartbeat(server, key, machine_id):
    return Client(server, key).post(f"machines/{machine_id}/heartbeat/", {})


def files_under(path):
    return [p for p in path.rglob("*") if p.is_file()]


# --- machine add ------------------------------------------------------------------------------

def test_add_keeps_the_machine_token_and_not_the_owners(dmarket, server, user, state_dir,
                                                        spawned):
    result = dmarket("--json", *ADD, "--detach")

    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    machine = Machine.objects.get(pk=shown["id"])
    assert "token" not in shown
    saved = json.loads(state_file(state_dir, machine.pk).read_text())
    token = ApiToken.objects.get(digest=key_digest(saved["token"]))
    assert (token.machine, token.user, token.name) == (machine, user.model, "machine")
    assert saved["token"] != user.token
    # The state file keeps the cluster's secret; what is printed does not show it.
    assert saved["agent"]["spark_secret"] and "spark_secret" not in shown["agent"]
    assert saved["agent"]["spark_secret"] not in result.stdout + result.stderr
    saved["agent"].pop("spark_secret")
    assert {k: v for k, v in saved.items() if k != "token"} == {
        k: v for k, v in shown.items() if k not in ("agent_pid", "agent_log")}
    # Its owner's token is in none of the agent's files.
    assert all(user.token not in p.read_text() for p in files_under(state_dir))
    # The state file and its directory are the owner's only.
    assert stat.S_IMODE(state_file(state_dir, machine.pk).stat().st_mode) == 0o600
    assert stat.S_IMODE(state_file(state_dir, machine.pk).parent.stat().st_mode) == 0o700
    # The token is good for the machine's heartbeat.
    assert heartbeat(server, saved["token"], machine.pk)["state"] == "ONLINE"


def test_add_detached_starts_the_agent_without_the_owners_token(dmarket, server, user,
                                                                state_dir, spawned):
    result = dmarket("--json", *ADD, "--detach", env={"DMARKET_TOKEN": user.token,
                                                      "DMARKET_OTHER": "kept"})

    assert result.exit_code == 0, result.stderr
    machine_id = json.loads(result.stdout)["id"]
    (call,) = spawned.calls
    assert call["argv"] == [sys.executable, "-m", "dmarket_client", "--server", server,
                            "machine", "run", str(machine_id)]
    assert "DMARKET_TOKEN" not in call["env"]
    assert user.token not in call["env"].values()
    assert call["env"]["DMARKET_OTHER"] == "kept"
    assert call["env"]["DMARKET_STATE_DIR"] == str(state_dir)


def test_add_in_the_foreground_becomes_the_agent_without_the_owners_token(
        dmarket, server, user, state_dir, execed):
    result = dmarket(*ADD, env={"DMARKET_TOKEN": user.token})

    assert result.exit_code == 0, result.stderr
    machine = Machine.objects.get()
    assert result.stdout == f"machine {machine.pk} registered; sharing it (Ctrl-C to stop)\n"
    (call,) = execed
    assert (call["path"], call["argv"]) == (
        sys.executable, [sys.executable, "-m", "dmarket_client", "--server", server,
                         "machine", "run", str(machine.pk)])
    assert "DMARKET_TOKEN" not in call["env"]
    assert "token" in json.loads(state_file(state_dir, machine.pk).read_text())


def test_add_without_a_login_registers_nothing(dmarket, config_file, state_dir, spawned):
    result = dmarket(*ADD, "--detach")

    assert result.exit_code == 1
    assert Machine.objects.count() == 0
    assert not state_dir.exists()
    assert spawned.calls == []


# --- machine run ------------------------------------------------------------------------------

class OneHeartbeat(Agent):
    """The agent with its client as machine_cli gives it, for one heartbeat; no worker."""

    seen = []

    def __init__(self, client, machine, work_dir, spark_home=None, log=None, save_settings=None,
                 sandbox=True):
        self.client, self.machine = client, machine

    def run(self):
        OneHeartbeat.seen.append({"authorization": self.client.session.headers.get(
            "Authorization"), "machine": self.machine})
        self.client.post(f"machines/{self.machine['id']}/heartbeat/", {})
        return 0


@pytest.fixture
def added(dmarket, user, state_dir, spawned):
    """A machine added from here (its agent not started): its state file's contents."""
    result = dmarket("--json", *ADD, "--detach")
    assert result.exit_code == 0, result.stderr
    return json.loads(state_file(state_dir, json.loads(result.stdout)["id"]).read_text())


def test_run_heartbeats_with_the_machine_token_only(dmarket, added, monkeypatch):
    OneHeartbeat.seen = []
    monkeypatch.setattr(machine_cli, "Agent", OneHeartbeat)

    result = dmarket("machine", "run", added["id"])

    assert result.exit_code == 0, result.stderr
    (seen,) = OneHeartbeat.seen
    assert seen["authorization"] == f"Token {added['token']}"
    assert "token" not in seen["machine"]
    machine = Machine.objects.get(pk=added["id"])
    assert (machine.state, machine.last_heartbeat is not None) == (Machine.ONLINE, True)


def test_run_with_the_owners_token_in_the_environment_runs_without_it(
        dmarket, user, added, execed, server):
    result = dmarket("machine", "run", added["id"], env={"DMARKET_TOKEN": user.token})

    assert result.exit_code == 0, result.stderr
    (call,) = execed
    assert call["argv"] == [sys.executable, "-m", "dmarket_client", "--server", server,
                            "machine", "run", str(added["id"])]
    assert "DMARKET_TOKEN" not in call["env"]


def test_run_detached_spawns_the_agent_without_the_owners_token(dmarket, user, added, spawned):
    result = dmarket("machine", "run", added["id"], "--detach",
                     env={"DMARKET_TOKEN": user.token})

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"machine {added['id']}'s agent running in the background "
                             f"(pid {NO_PID})\n")
    assert "DMARKET_TOKEN" not in spawned.calls[-1]["env"]


def test_run_of_a_machine_added_by_an_older_client_says_what_to_do(dmarket, added, state_dir,
                                                                   spawned):
    path = state_file(state_dir, added["id"])
    path.write_text(json.dumps({k: v for k, v in added.items() if k != "token"}))
    before = len(spawned.calls)

    result = dmarket("machine", "run", added["id"], "--detach")

    assert result.exit_code == 1
    assert result.stderr == (
        f"dmarket: machine {added['id']} was added by an older client and has no machine token: "
        f"run `dmarket machine remove {added['id']}`, then `dmarket machine add` again\n")
    assert len(spawned.calls) == before


# --- machine remove ---------------------------------------------------------------------------

def test_remove_revokes_the_machine_token(dmarket, server, user, added):
    assert heartbeat(server, added["token"], added["id"])["state"] == "ONLINE"

    result = dmarket("machine", "remove", added["id"])

    assert result.exit_code == 0, result.stderr
    with pytest.raises(ApiError) as refused:
        heartbeat(server, added["token"], added["id"])
    assert (refused.value.status, refused.value.detail) == (401, "Invalid token.")
    assert not ApiToken.objects.filter(machine_id=added["id"]).exists()
    # The owner's token is untouched.
    assert ApiToken.objects.filter(digest=key_digest(user.token)).exists()


# --- the agent --------------------------------------------------------------------------------

@pytest.fixture
def spark_home(tmp_path):
    home = tmp_path / "spark"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "spark-class").write_text("#!/bin/sh\n")
    return home


def test_the_worker_gets_no_token(server, added, spark_home, tmp_path, monkeypatch):
    started = []

    class Worker:
        pid = 4343

        def __init__(self, argv, env=None, **kwargs):
            started.append(env)

    monkeypatch.setattr(agent_module.subprocess, "Popen", Worker)
    monkeypatch.setenv("DMARKET_TOKEN", "the-owners-token")
    machine = {k: v for k, v in added.items() if k != "token"}
    # Unsandboxed here (its Popen is faked); the sandbox's own allowlist: the test below.
    agent = Agent(Client(server, added["token"]), machine, tmp_path / "work",
                  spark_home=spark_home, log=lambda message: None, sandbox=False)

    agent.start_worker()

    (env,) = started
    assert "DMARKET_TOKEN" not in env
    assert not {"the-owners-token", added["token"]} & set(env.values())
    assert env["SPARK_LOCAL_IP"] == "127.0.0.9"
    assert env["TF_USE_LEGACY_KERAS"] == "1"   # the executors' environment, from the server


def test_the_worker_sandbox_passes_an_allowlist_and_the_markets_executor_settings(tmp_path):
    from dmarket_client.worker_sandbox import WorkerSandbox

    box = WorkerSandbox(tmp_path / "machine-1", 1024, sys.executable)
    env = box.env({"DMARKET_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "k", "HOME": "/home/carol",
                   "LANG": "C.UTF-8", "_SPARK_AUTH_SECRET": "s", "TF_USE_LEGACY_KERAS": "1",
                   "SPARK_WORKER_OPTS": "-Dspark.authenticate=true"},
                  keep={"TF_USE_LEGACY_KERAS": "1"})

    assert not {"DMARKET_TOKEN", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert env["HOME"] == str(box.work) and env["JAVA_HOME"] == "/run/dmarket/java"
    assert (env["LANG"], env["_SPARK_AUTH_SECRET"], env["TF_USE_LEGACY_KERAS"]) == (
        "C.UTF-8", "s", "1")


def test_an_agent_whose_token_was_revoked_stops(dmarket, server, added, spark_home, tmp_path,
                                                monkeypatch):
    assert dmarket("machine", "remove", added["id"]).exit_code == 0
    monkeypatch.setattr(Agent, "start_worker", lambda self: None)
    # Not this process's handlers: the agent's own, for SIGTERM and SIGINT.
    monkeypatch.setattr(agent_module.signal, "signal", lambda signum, handler: None)
    logged = []
    machine = {k: v for k, v in added.items() if k != "token"}
    agent = Agent(Client(server, added["token"]), machine, tmp_path / "work",
                  spark_home=spark_home, log=logged.append)

    assert agent.run() == 1

    assert logged == ["the server no longer knows this machine: Invalid token."]


# --- the cluster's secret, in the agent ---------------------------------------------------------

def test_the_worker_gets_the_secret_in_its_environment_never_the_agents_own():
    settings = {"spark_secret": "s3cret", "spark_conf": {"spark.authenticate": "true",
                                                         "spark.network.crypto.enabled": "true"}}

    assert agent_module.worker_security_env(settings) == {
        "_SPARK_AUTH_SECRET": "s3cret",
        "SPARK_WORKER_OPTS": "-Dspark.authenticate=true -Dspark.network.crypto.enabled=true"}
    # One the agent was started with is not passed on (only the server's reaches the worker).
    assert "_SPARK_AUTH_SECRET" not in agent_module.agent_env({"_SPARK_AUTH_SECRET": "x",
                                                               "DMARKET_TOKEN": "t", "A": "1"})


def test_a_rotated_secret_in_the_heartbeat_answer_restarts_the_worker_and_is_saved(tmp_path):
    saved, events = [], []

    class Rotating(Agent):
        def __init__(self):
            self.settings = {"master_url": "spark://m:7077", "spark_secret": "old",
                             "spark_conf": {"spark.authenticate": "true"}}
            self.save_settings = saved.append
            self.log = events.append

        def worker_running(self):
            return True

        def stop_worker(self, grace=15):
            events.append("stop")

        def start_worker(self):
            events.append(f"start with {self.settings['spark_secret']}")

    agent = Rotating()
    agent.security_update({"state": "ONLINE", "spark_secret": "old",
                           "spark_conf": {"spark.authenticate": "true"}})
    assert (saved, events) == ([], [])

    agent.security_update({"state": "ONLINE", "spark_secret": "new",
                           "spark_conf": {"spark.authenticate": "true"}})
    assert saved == [{"master_url": "spark://m:7077", "spark_secret": "new",
                      "spark_conf": {"spark.authenticate": "true"}}]
    assert events == ["the cluster's secret changed; restarting the worker with it", "stop",
                      "start with new"]


def test_install_service_writes_a_user_unit_that_runs_the_agent(dmarket, added, server,
                                                                state_dir, tmp_path,
                                                                monkeypatch):
    import configparser
    import shlex
    import sys

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))

    result = dmarket("machine", "install-service", added["id"])

    assert result.exit_code == 0, result.stderr
    unit = tmp_path / "xdg" / "systemd" / "user" / f"dmarket-machine-{added['id']}.service"
    assert result.stdout.startswith(f"wrote {unit}; start it with:\n")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.optionxform = str
    parsed.read_string(unit.read_text())
    service = parsed["Service"]
    assert shlex.split(service["ExecStart"]) == [
        sys.executable, "-m", "dmarket_client", "--server", server, "machine", "run",
        str(added["id"])]
    assert (service["Restart"], parsed["Install"]["WantedBy"]) == ("on-failure",
                                                                   "default.target")
    assert f"DMARKET_STATE_DIR={state_dir}" in shlex.split(service["Environment"])
    # The unit names no token: the agent reads its machine's from its state file.
    assert added["token"] not in unit.read_text()


def test_install_service_of_a_machine_not_added_here_says_so(dmarket, user, state_dir):
    result = dmarket("machine", "install-service", 999)
    assert result.exit_code == 1
    assert "machine 999 was not added from this computer" in result.stderr
