"""Which GPUs TensorFlow sees in an executor's task: the inference server's tasks and the MNIST
sample map the task's GPUs (TaskContext.resources()) to CUDA's numbering in the executor's
sandbox, which shows it only its own GPUs (DMARKET_EXECUTOR_GPUS); none means the CPU."""

import importlib
import sys
from pathlib import Path

import pytest

from dmarket.inference import executor

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "mnist"


@pytest.mark.parametrize("executor_gpus, task, expected", [
    ("", ["2", "3"], "2,3"),          # no sandbox: every GPU visible, by its own address
    ("2,3", ["3"], "1"),              # the sandbox shows 2 and 3, which CUDA numbers 0 and 1
    ("2,3", ["2", "3"], "0,1"),
    ("5", [], ""),                    # a task holding none: the CPU
    ("", [], ""),
])
def test_inference_tasks_map_their_gpus_to_cudas_numbering(monkeypatch, executor_gpus, task,
                                                           expected):
    monkeypatch.setenv("DMARKET_EXECUTOR_GPUS", executor_gpus)

    assert executor.cuda_devices(task) == expected


def test_outside_a_task_there_is_no_gpu():
    assert executor.task_gpus() == []


@pytest.fixture
def mnist_common(monkeypatch):
    monkeypatch.syspath_prepend(str(SAMPLE))
    for name in ("DMARKET_CUDA_MAPPED", "CUDA_VISIBLE_DEVICES", "DMARKET_EXECUTOR_GPUS"):
        monkeypatch.delenv(name, raising=False)
    module = importlib.import_module("mnist_common")
    yield module
    sys.modules.pop("mnist_common", None)


def test_the_mnist_node_maps_what_tensorflowonspark_set_once(mnist_common, monkeypatch):
    # TensorFlowOnSpark's node process: no TaskContext, CUDA_VISIBLE_DEVICES from the task's
    # resources, by address.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("DMARKET_EXECUTOR_GPUS", "3")

    assert mnist_common.use_task_gpus() == "0"
    # Mapped once: a second call leaves it.
    assert mnist_common.use_task_gpus() == "0"


def test_an_mnist_node_without_gpus_runs_on_the_cpu(mnist_common, monkeypatch):
    monkeypatch.setenv("DMARKET_EXECUTOR_GPUS", "")

    assert mnist_common.use_task_gpus() == ""
