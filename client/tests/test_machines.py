"""dmarket machine add / run / remove and the agent's token: the agent gets its machine's own
token (kept in its state file, mode 600), never the owner's, and neither token reaches the
worker's environment. No Spark here: the agent's processes are recorded, not started."""

import json
import os
import stat
import subprocess
import sys
from types import SimpleNamespace

import pytest

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.machines.models import Machine
from dmarket_client import agent as agent_module
from dmarket_client import gpus
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


# --- machine add: GPUs -------------------------------------------------------------------------

@pytest.fixture
def detected(monkeypatch):
    """The GPUs nvidia-smi would find here: none unless a test says so."""
    found = []
    monkeypatch.setattr(gpus, "detect_gpus", lambda: list(found))
    return found


def registration(posted):
    (body,) = [body for path, body in posted if path == "machines/"]
    return body


def test_add_offers_the_gpu_addresses_given_and_saves_them(dmarket, user, state_dir, spawned,
                                                           detected, posted):
    result = dmarket("--json", *ADD, "--gpu-addresses", "2,3", "--detach")

    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    body = registration(posted)
    # The server's default type applies: gpu, for a machine offering GPUs.
    assert body["gpus"] == 2 and "machine_type" not in body
    machine = Machine.objects.get(pk=shown["id"])
    assert (machine.gpus, machine.machine_type) == (2, "gpu")
    assert (shown["gpus"], shown["machine_type"], shown["gpu_addresses"]) == (2, "gpu",
                                                                             ["2", "3"])
    # The agent offers the same ones after a restart.
    saved = json.loads(state_file(state_dir, machine.pk).read_text())
    assert (saved["gpus"], saved["gpu_addresses"]) == (2, ["2", "3"])


def test_add_offers_the_gpus_found_here_by_default(dmarket, user, state_dir, spawned, detected,
                                                   posted):
    detected.extend(["0", "1", "2"])

    every = dmarket("--json", *ADD, "--detach")
    some = dmarket("--json", *ADD, "--gpus", "2", "--detach")

    assert every.exit_code == 0 and some.exit_code == 0, (every.stderr, some.stderr)
    first, second = (json.loads(state_file(state_dir, json.loads(r.stdout)["id"]).read_text())
                     for r in (every, some))
    assert (first["gpus"], first["gpu_addresses"]) == (3, ["0", "1", "2"])
    assert (second["gpus"], second["gpu_addresses"]) == (2, ["0", "1"])
    assert [body["gpus"] for path, body in posted if path == "machines/"] == [3, 2]


def test_add_without_gpus_registers_a_cpu_machine(dmarket, user, state_dir, spawned, detected,
                                                  posted):
    result = dmarket("--json", *ADD, "--detach")

    assert result.exit_code == 0, result.stderr
    assert registration(posted)["gpus"] == 0 and "machine_type" not in registration(posted)
    shown = json.loads(result.stdout)
    assert (shown["gpus"], shown["machine_type"]) == (0, "cpu")
    assert "gpu_addresses" not in json.loads(state_file(state_dir, shown["id"]).read_text())


def test_add_sends_the_type_given(dmarket, user, state_dir, spawned, detected, posted):
    result = dmarket(*ADD, "--gpu-addresses", "0", "--type", "cpu", "--detach")

    # A cpu machine offering a GPU is the server's 400.
    assert result.exit_code == 1
    assert registration(posted)["machine_type"] == "cpu"
    assert Machine.objects.count() == 0


def test_add_type_cpu_on_a_computer_with_gpus_offers_none(dmarket, user, state_dir, spawned,
                                                           detected, posted):
    detected.extend(["0", "1"])

    result = dmarket("--json", *ADD, "--type", "cpu", "--detach")

    assert result.exit_code == 0, result.stderr
    assert (registration(posted)["gpus"], registration(posted)["machine_type"]) == (0, "cpu")
    assert Machine.objects.get().gpus == 0


@pytest.mark.parametrize("args, message", [
    (["--gpus", "1"], "--gpus 1: only 0 GPU(s) found on this computer (none)"),
    (["--gpus", "3", "--gpu-addresses", "0,1"],
     "--gpus 3: only 2 GPU(s) given with --gpu-addresses (0, 1)"),
])
def test_add_more_gpus_than_there_are_is_a_usage_error(dmarket, user, state_dir, spawned,
                                                       detected, args, message):
    result = dmarket(*ADD, *args, "--detach")

    assert result.exit_code == 2
    assert message in result.stderr
    assert Machine.objects.count() == 0 and spawned.calls == []


@pytest.mark.parametrize("addresses, message", [
    ("0,x", "'x' is not a GPU address"), ("1,1", "a GPU address is named twice")])
def test_add_bad_gpu_addresses_are_a_usage_error(dmarket, user, state_dir, spawned, addresses,
                                                 message):
    result = dmarket(*ADD, "--gpu-addresses", addresses, "--detach")

    assert result.exit_code == 2
    assert "Invalid value for '--gpu-addresses'" in result.stderr and message in result.stderr
    assert Machine.objects.count() == 0


def test_list_shows_the_gpus(dmarket, user, state_dir, spawned, detected):
    assert dmarket(*ADD, "--gpu-addresses", "0,1", "--name", "big", "--detach").exit_code == 0

    result = dmarket("machine", "list")

    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:7] == ["ID", "NAME", "ADDRESS", "CORES", "IN", "USE", "GPUS"]
    assert row.split()[1:6] == ["big", "127.0.0.9", "2", "0", "2"]


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


# --- the agent's GPUs -------------------------------------------------------------------------

GPU_MACHINE = {"id": 7, "address": "127.0.0.9", "cores": 2, "memory_mb": 1024, "gpus": 2,
               "machine_type": "gpu",
               "agent": {"master_url": "spark://127.0.0.1:7077", "spark_secret": "s",
                         "spark_conf": {"spark.authenticate": "true"}}}


@pytest.fixture
def started(monkeypatch):
    """The workers' (argv, env) the agent would start: none is."""
    calls = []

    class Worker:
        pid = 4343

        def __init__(self, argv, env=None, **kwargs):
            calls.append((argv, env))

    monkeypatch.setattr(agent_module.subprocess, "Popen", Worker)
    return calls


# Popen itself: the tests' `started` replaces the one subprocess.run calls.
POPEN = subprocess.Popen


def discovered(script):
    """What Spark reads from the discovery script: it is run for real."""
    with POPEN([str(script)], stdout=subprocess.PIPE, text=True) as process:
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    return json.loads(out)


def test_the_worker_offers_the_saved_gpus_to_spark(spark_home, tmp_path, started, detected):
    # A space in the state directory's path: the option keeps it (Spark's launcher splits
    # SPARK_WORKER_OPTS at unescaped blanks).
    work = tmp_path / "state dir" / "machine-7"
    agent = Agent(None, {**GPU_MACHINE, "gpu_addresses": ["1", "3"]}, work,
                  spark_home=spark_home, log=lambda message: None, sandbox=False)

    agent.start_worker()

    ((argv, env),) = started
    script = work / "gpu-discovery"
    escaped = str(script).replace(" ", "\\ ")
    assert env["SPARK_WORKER_OPTS"] == (
        "-Dspark.authenticate=true -Dspark.worker.resource.gpu.amount=2 "
        f"-Dspark.worker.resource.gpu.discoveryScript={escaped}")
    assert discovered(script) == {"name": "gpu", "addresses": ["1", "3"]}
    assert argv[argv.index("--cores") + 1] == "2"
    # Its executors see every GPU here: numbered by CUDA as nvidia-smi numbers them.
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_the_worker_offers_the_first_gpus_found_without_saved_ones(spark_home, tmp_path,
                                                                   started, detected):
    detected.extend(["0", "1", "2"])
    agent = Agent(None, GPU_MACHINE, tmp_path / "machine-7", spark_home=spark_home,
                  log=lambda message: None, sandbox=False)

    agent.start_worker()

    assert discovered(tmp_path / "machine-7" / "gpu-discovery")["addresses"] == ["0", "1"]


def test_an_agent_finding_fewer_gpus_than_offered_starts_no_worker(spark_home, tmp_path,
                                                                   started, detected):
    detected.append("0")
    agent = Agent(None, GPU_MACHINE, tmp_path / "machine-7", spark_home=spark_home,
                  log=lambda message: None, sandbox=False)

    with pytest.raises(RuntimeError) as refused:
        agent.start_worker()

    assert str(refused.value) == ("machine 7 offers 2 GPU(s) but 1 are found here (0); the "
                                  "worker was not started")
    assert started == []


def test_a_worker_without_gpus_gets_no_resource_options(spark_home, tmp_path, started,
                                                        detected):
    detected.extend(["0", "1"])
    machine = {**GPU_MACHINE, "gpus": 0, "machine_type": "cpu"}
    agent = Agent(None, machine, tmp_path / "machine-7", spark_home=spark_home,
                  log=lambda message: None, sandbox=False)

    agent.start_worker()

    ((argv, env),) = started
    assert env["SPARK_WORKER_OPTS"] == "-Dspark.authenticate=true"
    assert not (tmp_path / "machine-7" / "gpu-discovery").exists()


def test_the_sandboxed_worker_runs_the_discovery_script_from_its_shim_directory(
        spark_home, tmp_path, started, monkeypatch):
    from dmarket_client import worker_sandbox

    wrapped = []

    class Box(worker_sandbox.WorkerSandbox):
        """The sandbox without bubblewrap or spark-class: what it would wrap, recorded."""

        def prepare(self):
            self.shim_dir.mkdir(parents=True, exist_ok=True)

        def command(self, argv, env=None):
            wrapped.append((self, dict(env)))
            return ["bwrap", "--", *argv]

    monkeypatch.setattr(worker_sandbox, "WorkerSandbox", Box)
    agent = Agent(None, {**GPU_MACHINE, "gpu_addresses": ["1", "3"]}, tmp_path / "machine-7",
                  spark_home=spark_home, log=lambda message: None)

    agent.start_worker()

    ((box, env),) = wrapped
    assert (box.gpu_resource, box.gpu_addresses) == ("gpu", ["1", "3"])
    # The path the worker sees: the shim directory, bound read-only at SHIM_HOME.
    assert env["SPARK_WORKER_OPTS"].endswith(
        " -Dspark.worker.resource.gpu.discoveryScript=/run/dmarket/java/gpu-discovery")
    assert discovered(box.shim_dir / "gpu-discovery") == {"name": "gpu",
                                                          "addresses": ["1", "3"]}
    ((argv, worker_env),) = started
    assert worker_env["SPARK_WORKER_OPTS"] == env["SPARK_WORKER_OPTS"]


# --- the executors' GPUs, in their sandboxes ----------------------------------------------------

APP = "app-20260101000000-0007"


@pytest.fixture
def shim(tmp_path):
    """The shim's settings for a worker offering GPUs 0 and 1, its /dev a directory of fake
    device nodes (plain files), and an executor's directory."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm"):
        (dev / name).write_text("")
    work, local = tmp_path / "work", tmp_path / "local"
    executor_dir = work / APP / "4"
    executor_dir.mkdir(parents=True)
    local.mkdir()
    config = {"bwrap": "/usr/bin/bwrap", "java_home": "/run/dmarket/jdk-x", "work": str(work),
              "local": str(local), "readable": [], "gpu_resource": "gpu",
              "gpu_addresses": ["0", "1"], "dev": str(dev)}
    return SimpleNamespace(dev=dev, config=config, cwd=executor_dir)


def executor_command(shim, resources=None):
    """The shim's bubblewrap command for an executor, with this resources file (Spark's
    format) if any."""
    from dmarket_client.worker_sandbox import EXECUTOR_CLASS, executor_argv

    argv = ["-Xmx1g", "-cp", "x", EXECUTOR_CLASS, "--driver-url", "spark://d", "--executor-id",
            "4", "--app-id", APP]
    if resources is not None:
        path = shim.cwd / "resource-executor-4242.json"
        path.write_text(json.dumps(resources))
        argv += ["--resourcesFile", str(path)]
    return executor_argv(argv, shim.config, {}, str(shim.cwd))


def dev_binds(args):
    return [tuple(args[i + 1:i + 3]) for i, a in enumerate(args) if a == "--dev-bind"]


def setenv(args):
    return {args[i + 1]: args[i + 2] for i, a in enumerate(args) if a == "--setenv"}


def spark_resources(name, addresses):
    return [{"id": {"componentName": "spark.executor", "resourceName": name},
             "addresses": addresses}]


def test_an_executor_gets_the_nodes_of_its_own_gpus_only(shim):
    args = executor_command(shim, spark_resources("gpu", ["1"]))

    dev = shim.dev
    assert dev_binds(args) == [(f"{dev}/nvidia1", "/dev/nvidia1"),
                               (f"{dev}/nvidiactl", "/dev/nvidiactl"),
                               (f"{dev}/nvidia-uvm", "/dev/nvidia-uvm")]
    assert not any("nvidia0" in a or "nvidia2" in a for a in args)
    # Put into its own /dev, after that is made.
    assert args.index("--dev") < args.index("--dev-bind")
    assert setenv(args) == {"DMARKET_EXECUTOR_GPUS": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    # Options for bubblewrap, all before the executor's own command line.
    assert max(i for i, a in enumerate(args) if a == "--setenv") < args.index("--")


def test_an_executor_holding_two_gpus_lists_them_as_cuda_numbers_them(shim):
    # CUDA numbers the GPUs it sees by PCI bus (as nvidia-smi numbers the addresses), not in
    # the order Spark listed them.
    args = executor_command(shim, spark_resources("gpu", ["1", "0", "1"]))

    assert [d for _, d in dev_binds(args)][:2] == ["/dev/nvidia0", "/dev/nvidia1"]
    assert setenv(args)["DMARKET_EXECUTOR_GPUS"] == "0,1"


@pytest.mark.parametrize("resources", [
    None,                                        # no resources file: it holds nothing
    [],
    spark_resources("fpga", ["0"]),              # another resource's addresses
    spark_resources("gpu", ["2"]),               # a GPU this worker does not offer
    {"gpu": ["0"]},                              # not what the worker writes
    [{"id": {"resourceName": "gpu"}, "addresses": ["../nvidiactl", 0]}],
])
def test_an_executor_holding_no_gpu_of_the_workers_gets_no_nvidia_node(shim, resources):
    args = executor_command(shim, resources)

    assert dev_binds(args) == []
    assert "--setenv" not in args and not any("nvidia" in a for a in args)


def hostile_command(shim, arrange):
    """The shim's command for an executor whose resources file the application arranged."""
    from dmarket_client.worker_sandbox import EXECUTOR_CLASS, executor_argv

    path = shim.cwd / "resource-executor-77.json"
    argv = ["-Xmx1g", "-cp", "x", EXECUTOR_CLASS, "--driver-url", "spark://d", "--executor-id",
            "4", "--app-id", APP]
    argv = arrange(shim, path, argv)
    return executor_argv(argv, shim.config, {}, str(shim.cwd))


def own_file_first(shim, path, argv):
    # A --resourcesFile among the application's own Java options, not the worker's last pair.
    path.write_text(json.dumps(spark_resources("gpu", ["0", "1"])))
    return ["--resourcesFile", str(path), *argv]


def link_to_elsewhere(shim, path, argv):
    target = shim.cwd.parent / "theirs.json"
    target.write_text(json.dumps(spark_resources("gpu", ["0"])))
    path.symlink_to(target)
    return argv + ["--resourcesFile", str(path)]


def a_fifo(shim, path, argv):
    os.mkfifo(path)
    return argv + ["--resourcesFile", str(path)]


def too_big(shim, path, argv):
    path.write_text(json.dumps(spark_resources("gpu", ["0"])) + " " * 70_000)
    return argv + ["--resourcesFile", str(path)]


def another_name(shim, path, argv):
    other = shim.cwd / "mine.json"
    other.write_text(json.dumps(spark_resources("gpu", ["0"])))
    return argv + ["--resourcesFile", str(other)]


def another_directory(shim, path, argv):
    other = shim.cwd.parent / "resource-executor-1.json"
    other.write_text(json.dumps(spark_resources("gpu", ["0"])))
    return argv + ["--resourcesFile", str(other)]


@pytest.mark.parametrize("arrange", [own_file_first, link_to_elsewhere, a_fifo, too_big,
                                     another_name, another_directory])
def test_a_resources_file_the_application_arranged_gives_no_gpu_and_never_hangs(shim, arrange):
    args = hostile_command(shim, arrange)

    assert dev_binds(args) == [] and "--setenv" not in args


def test_a_worker_offering_no_gpu_gives_its_executors_none(shim):
    shim.config.update(gpu_addresses=[])

    args = executor_command(shim, spark_resources("gpu", ["0"]))

    assert dev_binds(args) == [] and "--setenv" not in args


def test_the_workers_gpu_nodes_are_those_that_exist(tmp_path, shim):
    from dmarket_client.worker_sandbox import gpu_bind_args

    assert gpu_bind_args(["0", "5"], str(shim.dev)) == [
        "--dev-bind", f"{shim.dev}/nvidia0", "/dev/nvidia0",
        "--dev-bind", f"{shim.dev}/nvidiactl", "/dev/nvidiactl",
        "--dev-bind", f"{shim.dev}/nvidia-uvm", "/dev/nvidia-uvm"]
    assert gpu_bind_args([], str(shim.dev)) == []
    # No GPU on a computer without NVIDIA's driver: nothing added.
    assert gpu_bind_args(["0"], str(tmp_path / "no-dev")) == []


def test_the_worker_sandbox_tells_the_shim_its_gpus(tmp_path):
    from dmarket_client.worker_sandbox import WorkerSandbox

    box = WorkerSandbox(tmp_path / "machine-1", 1024, sys.executable, gpu_resource="gpu",
                        gpu_addresses=["0", "2"])

    assert box.discovery_script() == "/run/dmarket/java/gpu-discovery"
    assert discovered(box.shim_dir / "gpu-discovery") == {"name": "gpu",
                                                          "addresses": ["0", "2"]}


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


def test_the_agent_beats_at_the_interval_each_answer_asks_for():
    events = []

    class Listening(Agent):
        def __init__(self):
            self.settings = {"heartbeat_interval": 10, "heartbeat_timeout": 30}
            self.log = events.append

    agent = Listening()
    agent.timing_update({"state": "ONLINE", "heartbeat_interval": 10, "heartbeat_timeout": 30})
    assert events == []
    agent.timing_update({"state": "ONLINE", "heartbeat_interval": 50, "heartbeat_timeout": 150})
    assert agent.settings == {"heartbeat_interval": 50, "heartbeat_timeout": 150}
    assert events == ["the server asks for a heartbeat every 50 s"]
    for wrong in ({}, {"heartbeat_interval": 0}, {"heartbeat_interval": "soon"}):
        agent.timing_update(wrong)
    assert agent.settings["heartbeat_interval"] == 50


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
