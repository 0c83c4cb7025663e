"""dmarket infer ... and dmarket cluster status, against a live server.

No inference server runs here: the tests play its part by claiming jobs and writing batches
and outputs into the database.
"""

import json

import pytest

from dmarket.inference.lifecycle import inference_claim
from dmarket.inference.models import InferenceJob, InferenceOutput
from dmarket.inference.tests.util import add_batch
from dmarket.machines.models import Machine


def test_submit_show_list_and_cancel(dmarket, dmarket_json, user):
    ijob = dmarket_json("infer", "submit", "--model", "resnet50:64", "--data", "synthetic:50",
                        "--batch-size", "8", "--max-credits", "2", "--name", "rn")
    assert {k: ijob[k] for k in ("name", "model", "data", "batch_size", "status",
                                 "input_count", "max_credits")} == {
        "name": "rn", "model": "resnet50:64", "data": "synthetic:50", "batch_size": 8,
        "status": "QUEUED", "input_count": 50, "max_credits": "2.000000"}
    result = dmarket("infer", "show", ijob["id"])
    assert result.exit_code == 0
    assert "model             resnet50:64" in result.stdout
    result = dmarket("infer", "list")
    assert result.stdout.splitlines()[0].split() == ["ID", "NAME", "STATUS", "BATCH",
                                                     "OUTPUTS", "COST"]
    assert result.stdout.splitlines()[1].split() == [str(ijob["id"]), "rn", "QUEUED", "8",
                                                     "0/50", "0.000000"]
    result = dmarket("infer", "cancel", ijob["id"])
    assert result.exit_code == 0
    assert result.stdout == f"Inference job {ijob['id']}: CANCELLED.\n"
    result = dmarket("infer", "cancel", ijob["id"])
    assert result.exit_code == 1
    assert result.stderr == (f"dmarket: Inference job {ijob['id']} has already finished "
                             "(CANCELLED).\n")


@pytest.mark.parametrize("flags", [["--quiet"], ["-q"], ["-q", "--json"]])
def test_submit_quiet_prints_only_the_id(dmarket, user, flags):
    result = dmarket("infer", "submit", "--model", "lenet", "--data", "synthetic:5",
                     "--batch-size", "2", *flags)
    assert result.exit_code == 0, result.stderr
    ijob = InferenceJob.objects.get()
    assert result.stdout == f"{ijob.pk}\n"
    assert result.stderr == ""
    assert (ijob.model, ijob.batch_size) == ("lenet", 2)


def test_models_and_data_are_named_in_the_file_store(dmarket, dmarket_json, user, tmp_path,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.keras").write_bytes(b"model")
    (tmp_path / "x.csv").write_text("label,a,b\n1,2,3\n4,5,6\n")
    assert dmarket("files", "put", "m.keras", "models/m.keras").exit_code == 0
    assert dmarket("files", "put", "x.csv", "data/x.csv").exit_code == 0
    ijob = dmarket_json("infer", "submit", "--model", "models/m.keras", "--data",
                        "dmarket://data", "--batch-size", "1")
    assert (ijob["model"], ijob["data"], ijob["input_count"]) == (
        "dmarket://models/m.keras@1", "dmarket://data", 2)

    # A file on this machine is not one the server can read.
    result = dmarket("infer", "submit", "--model", "./m.keras", "--data", "synthetic:1",
                     "--batch-size", "1")
    assert result.exit_code == 1
    assert result.stderr == (f"dmarket: model: '{tmp_path}/m.keras': only operators may name "
                             "files on the server; put the model into the file store (dmarket "
                             "files put) and name it dmarket://NAME\n")


def test_stats_rates_and_set_batch(dmarket, dmarket_json, user):
    machine = Machine.objects.create(user=user.model, cores=1, memory_mb=1, address="10.0.0.7")
    ids = [dmarket_json("infer", "submit", "--model", "lenet", "--data", "synthetic:40",
                        "--batch-size", "4")["id"] for _ in range(2)]
    jobs = [inference_claim(i) for i in ids]
    add_batch(jobs[0], 0, 4, 12.5, seconds_ago=1, machine=machine, host="10.0.0.7")
    add_batch(jobs[1], 0, 4, 50.0, seconds_ago=1)

    result = dmarket("infer", "stats", ids[0])
    lines = result.stdout.splitlines()
    assert lines[0] == f"inference job {ids[0]}: RUNNING, batch size 4, 4/40 inputs"
    assert lines[1].split()[:3] == ["COUNT", "MEAN", "MS"]
    assert lines[2].split()[:7] == ["4", "12.50", "0.00", "12.50", "12.50", "12.50", "12.50"]
    assert lines[2].endswith(f"10.0.0.7 (#{machine.pk})")
    assert [s["job"] for s in dmarket_json("infer", "stats")] == sorted(ids, reverse=True)

    body = dmarket_json("infer", "rates")
    assert [j["count"] for j in body["jobs"]] == [4, 4]
    result = dmarket("infer", "rates")
    assert result.stdout.splitlines()[-1].startswith("max/min of the 10 s rates: ")

    result = dmarket("infer", "set-batch", ids[0], "32")
    assert result.stdout == f"Inference job {ids[0]}: batch size 32.\n"
    result = dmarket("infer", "set-batch", ids[0], "0")
    assert result.exit_code == 2


def test_results_listed_and_downloaded(dmarket, dmarket_json, user, tmp_path):
    ijob = inference_claim(dmarket_json("infer", "submit", "--model", "lenet", "--data",
                                        "synthetic:3", "--batch-size", "4")["id"])
    InferenceOutput.objects.bulk_create([
        InferenceOutput(job=ijob, index=i, name=f"synthetic:{i}", output=[0.1 * i] * 10)
        for i in range(3)])
    result = dmarket("infer", "results", ijob.pk)
    assert result.stdout.splitlines()[1].split() == ["0", "synthetic:0", "[10", "values;",
                                                     "argmax", "0", "(0.0000)]"]
    assert len(dmarket_json("infer", "results", ijob.pk, "--limit", "2")) == 2
    target = tmp_path / "out.jsonl"
    result = dmarket("infer", "results", ijob.pk, "--download", target)
    assert result.stdout == f"3 outputs saved in {target}.\n"
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["synthetic:0", "synthetic:1", "synthetic:2"]

    # --json: what was written, as JSON (once a Python tuple of the size and the headers).
    again = tmp_path / "again.jsonl"
    result = dmarket("infer", "results", ijob.pk, "--download", again, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"path": str(again), "size": again.stat().st_size,
                                         "outputs": 3}
    assert again.read_bytes() == target.read_bytes() and again.stat().st_size > 0
    assert not (tmp_path / "again.jsonl.part").exists()


def test_cluster_status(dmarket, dmarket_json, user):
    machine = Machine.objects.create(user=user.model, name="box", cores=4, memory_mb=1,
                                     address="10.0.0.9", state=Machine.ONLINE, cores_in_use=2)
    ijob = inference_claim(dmarket_json("infer", "submit", "--model", "lenet", "--data",
                                        "synthetic:3", "--batch-size", "4")["id"])
    add_batch(ijob, 0, 3, 1.0, machine=machine)
    result = dmarket("cluster", "status")
    assert result.stdout.splitlines()[1].split() == [
        str(machine.pk), "box", "10.0.0.9", "ONLINE", "2/4", "inference", str(ijob.pk),
        "(ada)"]
    assert dmarket_json("cluster", "status")[0]["jobs"] == [
        {"kind": "inference", "id": ijob.pk, "owner": "ada", "cores": 1}]


def test_watch_prints_a_line_per_interval_until_the_jobs_have_finished(dmarket, dmarket_json,
                                                                       user):
    import re
    import threading

    from django.db import connection

    from dmarket.inference.services import inference_finish

    ids = [dmarket_json("infer", "submit", "--model", "lenet", "--data", "synthetic:40",
                        "--batch-size", "4")["id"] for _ in range(2)]
    jobs = [inference_claim(i) for i in ids]
    add_batch(jobs[0], 0, 4, 10.0, seconds_ago=0)
    add_batch(jobs[1], 0, 4, 10.0, seconds_ago=0)

    def finish():
        for ijob in jobs:
            inference_finish(ijob, "SUCCEEDED", "done")
        connection.close()

    timer = threading.Timer(1.6, finish)
    timer.start()
    result = dmarket("infer", "watch", *ids, "--interval", "0.5")
    timer.join()
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    running = (rf"^\d\d:\d\d:\d\d  {ids[0]} RUN 4/40 b4 \d+\.\d\d/s  \|  {ids[1]} RUN 4/40 b4 "
               r"\d+\.\d\d/s  \|  max/min \d+\.\d\d\d$")
    # The two jobs finish one after the other: a line may fall between them.
    ended = next(i for i, line in enumerate(lines) if " SUC " in line)
    assert ended >= 2 and all(re.match(running, line) for line in lines[:ended]), lines
    assert re.match(rf"^\d\d:\d\d:\d\d  {ids[0]} SUC 4/40 b4 \d+\.\d\d/s  \|  {ids[1]} SUC "
                    r"4/40 b4 \d+\.\d\d/s$", lines[-1]), lines

    result = dmarket("--json", "infer", "watch", ids[0])
    (line,) = result.stdout.splitlines()
    body = json.loads(line)
    assert [j["job"] for j in body["jobs"]] == [ids[0]] and body["max_over_min"] is None
    assert body["jobs"][0]["status"] == "SUCCEEDED"


def test_watch_exits_1_when_a_job_did_not_succeed(dmarket, dmarket_json, user):
    from dmarket.inference.services import inference_finish

    ids = [dmarket_json("infer", "submit", "--model", "lenet", "--data", "synthetic:8",
                        "--batch-size", "4")["id"] for _ in range(3)]
    jobs = [inference_claim(i) for i in ids[:2]]  # the third stays queued
    inference_finish(jobs[0], "SUCCEEDED", "done")
    inference_finish(jobs[1], "FAILED", "the model would not load")

    result = dmarket("infer", "watch", ids[0])
    assert result.exit_code == 0, result.stderr
    result = dmarket("infer", "watch", ids[1])
    assert result.exit_code == 1
    assert f" {ids[1]} FAI 0/8 b4 " in result.stdout
    assert result.stderr == ""
    # Any job that did not succeed makes the exit status 1, with --json too.
    result = dmarket("--json", "infer", "watch", ids[0], ids[1])
    assert result.exit_code == 1
    assert [j["status"] for j in json.loads(result.stdout)["jobs"]] == ["SUCCEEDED", "FAILED"]

    assert dmarket("infer", "cancel", ids[2]).exit_code == 0
    result = dmarket("infer", "watch", ids[2])
    assert result.exit_code == 1
    assert f" {ids[2]} CAN " in result.stdout
