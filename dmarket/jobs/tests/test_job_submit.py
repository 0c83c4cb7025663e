"""POST /api/jobs/: submitting a job holds its credit cap, and bad input writes nothing."""

import json
import os
import shlex
from decimal import Decimal

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

from .util import ANONYMOUS, assert_created_at, credits_of, job_json, ledger_kinds, submit

MESSAGE_402 = ("This job may cost up to {needed} credits but only {available} are available; "
               "lower max_credits or wait for running jobs to finish.")
FRESH_CREDITS = {"balance": "100.000000", "held": "0.000000", "available": "100.000000",
                 "earned": "0.000000", "spent": "0.000000"}


def offer_gpus(gpus, machine_type="gpu", state=Machine.OFFLINE):
    """A machine of the market's that offers this many GPUs (a contributor's)."""
    from django.contrib.auth import get_user_model

    owner, _ = get_user_model().objects.get_or_create(username="gpu-owner")
    return Machine.objects.create(user=owner, cores=4, memory_mb=8192, address="192.0.2.20",
                                  machine_type=machine_type, gpus=gpus, state=state)


def assert_nothing_written(user):
    assert Job.objects.count() == 0
    assert ledger_kinds(user) == ["grant"]
    assert credits_of(user) == FRESH_CREDITS


# --- Accepted submissions ---------------------------------------------------------------------

def test_minimal_submit_is_201_with_the_exact_job(alice, entry_file):
    response = submit(alice, entry_file)

    assert response.status_code == 201
    body = response.json()
    assert body == job_json(body["id"], "alice", entry_file, body["created_at"])
    assert_created_at(body)


def test_submit_with_every_field_is_201_with_the_exact_job(alice, entry_file):
    fields = {
        "name": "train resnet",
        "libs": ["https://example.org/helpers.zip", "hdfs://nn/libs/util.py"],
        "archives": ["hdfs://nn/a.zip#env", "https://example.org/data.tar.gz"],
        "app_params": ["--epochs", "3"],
        "cores": 8,
        "executor_memory_mb": 4096,
        "machine_type": "gpu",
        "gpus_per_executor": 2,
        "gpus_per_task": 0.5,
        "max_credits": "7.25",
        "submission_id": "run-1:a_b.c",
    }
    offer_gpus(2)
    response = submit(alice, entry_file, **fields)

    assert response.status_code == 201
    body = response.json()
    assert body == job_json(body["id"], "alice", entry_file, body["created_at"],
                            **{**fields, "max_credits": "7.250000"})
    assert_created_at(body)


def test_submit_holds_the_default_cap_visible_on_credits(alice, entry_file):
    job_id = submit(alice, entry_file).json()["id"]

    assert credits_of(alice) == {"balance": "100.000000", "held": "10.000000",
                                 "available": "90.000000", "earned": "0.000000",
                                 "spent": "0.000000"}
    hold = LedgerEntry.objects.get(user=alice, kind="hold")
    run_id = Job.objects.get(pk=job_id).run_id
    assert (hold.run_id, hold.amount, str(hold.held), hold.key, hold.memo) == (
        run_id, 0, "10.000000", f"hold:run:{run_id}", f"hold for job {job_id}")


@pytest.mark.parametrize("max_credits", ["2.5", 2.5])
def test_max_credits_as_string_or_number_is_held(alice, entry_file, max_credits):
    response = submit(alice, entry_file, max_credits=max_credits)

    assert response.status_code == 201
    assert response.json()["max_credits"] == "2.500000"
    assert credits_of(alice)["held"] == "2.500000"


def test_null_max_credits_means_the_default_cap(alice, entry_file):
    response = submit(alice, entry_file, max_credits=None)

    assert response.status_code == 201
    assert response.json()["max_credits"] == "10.000000"


def test_default_cap_follows_the_setting(alice, entry_file, settings):
    settings.DMARKET_DEFAULT_JOB_CAP = settings.DMARKET_DEFAULT_JOB_CAP / 4

    response = submit(alice, entry_file)

    assert response.json()["max_credits"] == "2.500000"
    assert credits_of(alice)["held"] == "2.500000"


def test_whole_balance_can_be_held(alice, entry_file):
    response = submit(alice, entry_file, max_credits="100")

    assert response.status_code == 201
    assert credits_of(alice)["available"] == "0.000000"


def test_remote_archive_with_alias_is_stored_verbatim(alice, entry_file):
    response = submit(alice, entry_file, archives=["hdfs://nn/a.zip#env"])

    assert response.status_code == 201
    assert response.json()["archives"] == ["hdfs://nn/a.zip#env"]
    assert Job.objects.get().archives == ["hdfs://nn/a.zip#env"]


def test_file_uri_entry_file_is_accepted_from_an_operator(staff, server_file):
    response = submit(staff, f"file://{server_file}")

    assert response.status_code == 201
    assert response.json()["entry_file"] == f"file://{server_file}"


def test_anonymous_submit_is_401_and_writes_nothing(entry_file, db):
    response = client_for().post("/api/jobs/", {"name": "job", "entry_file": entry_file},
                                 format="json")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS
    assert Job.objects.count() == 0


# --- Shell metacharacters --------------------------------------------------------------------

SHELL_TEXT = "; rm -rf / && echo $(whoami) `id` | cat > {out} 'q' \"dq\" \\\\ \\n $HOME *"


def test_app_params_list_is_stored_verbatim(alice, entry_file, tmp_path):
    out = tmp_path / "pwned"
    params = [";", "rm -rf /", "&&", "echo $(whoami)", "`id`", "|", f"cat > {out}", "'q'",
              '"dq"', "\\\\", "\\n", "a\nb", "$HOME", "*", ""]
    response = submit(alice, entry_file, app_params=params)

    assert response.status_code == 201
    assert response.json()["app_params"] == params
    assert Job.objects.get().app_params == params
    assert not out.exists()


def test_app_params_string_is_split_shell_style_without_expansion(alice, entry_file, tmp_path):
    out = tmp_path / "pwned"
    text = SHELL_TEXT.format(out=out)
    response = submit(alice, entry_file, app_params=text)

    expected = [";", "rm", "-rf", "/", "&&", "echo", "$(whoami)", "`id`", "|", "cat", ">",
                str(out), "q", "dq", "\\", "n", "$HOME", "*"]
    assert expected == shlex.split(text)  # the test's own reading of the string
    assert response.status_code == 201
    assert response.json()["app_params"] == expected
    assert Job.objects.get().app_params == expected
    assert not out.exists()


def test_app_params_string_keeps_quoted_spaces_and_newlines(alice, entry_file):
    response = submit(alice, entry_file, app_params="--title 'two words' \"a\nb\" ''")

    assert response.status_code == 201
    assert response.json()["app_params"] == ["--title", "two words", "a\nb", ""]


# --- Prices fixed at submission --------------------------------------------------------------

def test_price_and_premium_are_recorded_on_the_job(alice, bob, settings, entry_file):
    settings.DMARKET_PRICES = {"core": Decimal("1.5"), "gpu": Decimal("6.25")}
    Machine.objects.create(user=bob, cores=4, memory_mb=4096, address="10.0.0.1",
                           state=Machine.ONLINE)
    offer_gpus(1, state=Machine.ONLINE)

    # Two online machines: the premium is 1 while jobs <= machines, then jobs / machines.
    first = submit(alice, entry_file, machine_type="gpu", max_credits="1").json()
    second = submit(alice, entry_file, max_credits="1").json()
    third = submit(alice, entry_file, max_credits="1").json()

    # Every job has both prices: a cpu job's executors hold no GPU unless its driver asks
    # Spark for some itself, and then it pays for them like any other.
    expected = [("1.500000", "6.250000", "1.0000"), ("1.500000", "6.250000", "1.0000"),
                ("1.500000", "6.250000", "1.5000")]
    assert [(j["price_per_core_hour"], j["price_per_gpu_hour"], j["premium_rate"])
            for j in (first, second, third)] == expected
    rows = Job.objects.order_by("id").values_list(
        "run__price_per_core_hour", "run__price_per_gpu_hour", "run__premium_rate")
    assert [tuple(map(str, row)) for row in rows] == expected


# --- GPUs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, stored", [
    ({"gpus_per_executor": 1}, ("gpu", 1, 1.0)),
    ({"machine_type": "gpu"}, ("gpu", 1, 1.0)),
    ({"gpus_per_executor": 2, "gpus_per_task": 2}, ("gpu", 2, 2.0)),
    ({"gpus_per_executor": 2, "gpus_per_task": "0.25"}, ("gpu", 2, 0.25)),
    ({"machine_type": "gpu", "gpus_per_executor": 1, "gpus_per_task": 0.5}, ("gpu", 1, 0.5)),
    ({}, ("cpu", 0, 0.0)),
    ({"machine_type": "cpu", "gpus_per_executor": 0}, ("cpu", 0, 0.0)),
])
def test_gpus_and_machine_type_default_from_each_other(alice, entry_file, fields, stored):
    offer_gpus(2)

    response = submit(alice, entry_file, **fields)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["machine_type"], body["gpus_per_executor"], body["gpus_per_task"]) == stored
    job = Job.objects.get()
    assert (job.machine_type, job.gpus_per_executor, job.gpus_per_task) == stored


GPU_CPU = ("A cpu job's executors hold no GPU: leave machine_type out (or give gpu) to ask for "
           "GPUs.")


@pytest.mark.parametrize("fields, field, message", [
    ({"machine_type": "cpu", "gpus_per_executor": 1}, "gpus_per_executor", GPU_CPU),
    ({"gpus_per_task": 1}, "gpus_per_task",
     "Only a job whose executors hold GPUs (gpus_per_executor) shares them."),
    ({"gpus_per_executor": 1, "gpus_per_task": 2}, "gpus_per_task",
     "A task cannot hold more GPUs (2) than its executor (1, gpus_per_executor)."),
    ({"gpus_per_executor": 2, "gpus_per_task": 1.5}, "gpus_per_task",
     "1.5 is neither a whole number of GPUs nor a share of one (1/n, such as 0.5 or 0.25)."),
    ({"gpus_per_executor": 1, "gpus_per_task": 0.3}, "gpus_per_task",
     "0.3 is neither a whole number of GPUs nor a share of one (1/n, such as 0.5 or 0.25)."),
    ({"gpus_per_executor": 1, "gpus_per_task": 0}, "gpus_per_task",
     "A task of a GPU job holds part of a GPU at least, e.g. 0.5 or 1."),
    # Past what Spark can split a GPU into (and 1/x would overflow).
    ({"gpus_per_executor": 1, "gpus_per_task": 5e-324}, "gpus_per_task",
     "At most 64 tasks share one GPU: give at least 1/64."),
    ({"gpus_per_executor": 1, "gpus_per_task": 1 / 65}, "gpus_per_task",
     "At most 64 tasks share one GPU: give at least 1/64."),
    ({"gpus_per_executor": 1, "gpus_per_task": -1}, "gpus_per_task",
     "Ensure this value is greater than or equal to 0."),
    ({"gpus_per_executor": 1, "gpus_per_task": "NaN"}, "gpus_per_task",
     "A valid number is required."),
    ({"gpus_per_executor": -1}, "gpus_per_executor",
     "Ensure this value is greater than or equal to 0."),
    ({"gpus_per_executor": 65}, "gpus_per_executor",
     "Ensure this value is less than or equal to 64."),
    ({"gpus_per_executor": 1.5}, "gpus_per_executor", "A valid integer is required."),
    # More than any machine of the market offers: it could never start.
    ({"gpus_per_executor": 3}, "gpus_per_executor",
     "Each executor asks for 3 of resource 'gpu'; the most one machine of the market offers "
     "is 2."),
])
def test_bad_gpus_are_400_naming_the_field_and_write_nothing(alice, entry_file, fields, field,
                                                             message):
    offer_gpus(2)
    offer_gpus(1, state=Machine.ONLINE)
    # A removed machine offers nothing.
    offer_gpus(8, state=Machine.REMOVED)

    response = submit(alice, entry_file, **fields)

    assert response.status_code == 400
    assert response.json() == {"detail": f"{field}: {message}", "errors": {field: [message]}}
    assert_nothing_written(alice)


def test_a_gpu_job_in_a_market_without_gpus_is_400(alice, entry_file):
    Machine.objects.create(user=alice, cores=64, memory_mb=8192, address="192.0.2.1")

    response = submit(alice, entry_file, gpus_per_executor=1)

    assert response.status_code == 400
    assert response.json()["errors"] == {"gpus_per_executor": [
        "Each executor asks for 1 of resource 'gpu'; no machine of the market offers any."]}
    assert_nothing_written(alice)


def test_a_gpu_job_whose_machines_are_offline_is_queued(alice, entry_file):
    # Offered by a machine that is not online now: it waits (the launcher says why).
    offer_gpus(2, state=Machine.OFFLINE)

    response = submit(alice, entry_file, gpus_per_executor=2)

    assert response.status_code == 201
    assert response.json()["status"] == "QUEUED"


def test_premium_is_capped_with_no_machine_online(alice, entry_file):
    assert submit(alice, entry_file).json()["premium_rate"] == "2.0000"


# --- Bad input: 400 naming the field, nothing written ------------------------------------------

NOT_ABSOLUTE = ("{v!r} is not an absolute path; give the full path of a file the server can "
                "read, or an http(s):// or hdfs:// URI")
UNREADABLE = "{v} is not a file the server can read"
ENTRY_EXT = "{v!r} should end with one of .py, .jar"
LIB_EXT = "{v!r} should end with one of .py, .zip, .egg, .jar"
SERVER_FILE = ("{v!r}: only operators may name files on the server; put the file into the "
               "file store (dmarket files put, or let dmarket jobs submit upload it) and name "
               "it dmarket://NAME")
BAD_ALIAS = ("{v!r}: the alias after '#' may hold only letters, digits, '.', '_' and '-'")
ID_CHARS = "Use 1 to 128 letters, digits, '.', '_', ':' or '-'."
MISSING = object()

# (field, value, message): {tmp} in a value is the test's tmp_path; {v} or {v!r} in a message
# is the value as given (after {tmp} is filled in).
BAD_FIELDS = [
    ("name", MISSING, "This field is required."),
    ("name", "", "This field may not be blank."),
    ("name", "   ", "This field may not be blank."),
    ("name", None, "This field may not be null."),
    ("name", "x" * 201, "Ensure this field has no more than 200 characters."),
    ("name", "a\x00b", "Null characters are not allowed."),
    ("entry_file", MISSING, "This field is required."),
    ("entry_file", "", "This field may not be blank."),
    ("entry_file", "app.py", SERVER_FILE),
    ("entry_file", "https://example.org/notes.txt", ENTRY_EXT),
    ("entry_file", "ftp://x/y.py", "{v!r}: unsupported scheme 'ftp'; use a path, file://, "
                                   "dmarket://, http(s)://, hdfs:// or another Hadoop file "
                                   "system"),
    ("entry_file", "http:///nohost.py", "{v!r} names no host"),
    ("entry_file", "hdfs:///nohost.py", "{v!r} names no host"),
    ("entry_file", "{tmp}/app\x01.py", "{v!r} contains a control character"),
    ("entry_file", "{tmp}/app\n.py", "{v!r} contains a control character"),
    ("entry_file", " {tmp}/app.py",
     "must be a non-empty path or URI without surrounding spaces"),
    ("entry_file", "https://example.org/" + "x" * 2000 + ".py",
     "Ensure this field has no more than 2000 characters."),
    ("libs", "{tmp}/app.py", 'Expected a list of items but got type "str".'),
    ("libs", {"a": "{tmp}/app.py"}, 'Expected a list of items but got type "dict".'),
    ("libs", ["hdfs://nn/a.py"] * 101, "Ensure this field has no more than 100 elements."),
    ("archives", "hdfs://nn/a.zip", 'Expected a list of items but got type "str".'),
    ("archives", ["hdfs://nn/a.zip"] * 101, "Ensure this field has no more than 100 elements."),
    ("app_params", {"a": "b"}, "Give a list of strings, or one string to be split shell-style."),
    ("app_params", 7, "Give a list of strings, or one string to be split shell-style."),
    ("app_params", None, "This field may not be null."),
    ("app_params", ["a", 1], "Item 1 is not a string."),
    ("app_params", ["a", ["b"]], "Item 1 is not a string."),
    ("app_params", "a 'b", "Could not split the string shell-style: no closing quotation."),
    ("app_params", "a \\", "Could not split the string shell-style: no escaped character."),
    ("app_params", ["a\x00b"], "Item 0 contains a NUL character, which no argument can hold."),
    ("app_params", "ok a\x00b",
     "Item 1 contains a NUL character, which no argument can hold."),
    ("app_params", ["x"] * 1001, "At most 1000 parameters."),
    ("app_params", " ".join(["x"] * 1001), "At most 1000 parameters."),
    ("app_params", ["x" * 10001], "Item 0 is longer than 10000 characters."),
    ("cores", 0, "Ensure this value is greater than or equal to 1."),
    ("cores", -1, "Ensure this value is greater than or equal to 1."),
    ("cores", 1025, "Ensure this value is less than or equal to 1024."),
    ("cores", "x", "A valid integer is required."),
    ("cores", 2.5, "A valid integer is required."),
    ("cores", None, "This field may not be null."),
    ("executor_memory_mb", 511, "Ensure this value is greater than or equal to 512."),
    ("executor_memory_mb", 1048577, "Ensure this value is less than or equal to 1048576."),
    ("executor_memory_mb", "lots", "A valid integer is required."),
    ("driver_memory_mb", 511, "Ensure this value is greater than or equal to 512."),
    ("driver_memory_mb", 8193, "Ensure this value is less than or equal to 8192."),
    ("max_runtime", 0, "Ensure this value is greater than or equal to 1."),
    ("max_runtime", 604801, "Ensure this value is less than or equal to 604800."),
    ("machine_type", "tpu", "Unknown machine type 'tpu'; known: cpu, gpu."),
    ("machine_type", "", "This field may not be blank."),
    ("max_credits", 0, "Ensure this value is greater than or equal to 0.000001."),
    ("max_credits", "0", "Ensure this value is greater than or equal to 0.000001."),
    ("max_credits", -1, "Ensure this value is greater than or equal to 0.000001."),
    ("max_credits", "abc", "A valid number is required."),
    ("max_credits", "NaN", "A valid number is required."),
    ("max_credits", "1.0000001", "Ensure that there are no more than 6 decimal places."),
    ("max_credits", "1e30", "Ensure that there are no more than 20 digits in total."),
    ("submission_id", "bad id!", ID_CHARS),
    ("submission_id", "ok/../x", ID_CHARS),
    ("submission_id", "x" * 129, "Ensure this field has no more than 128 characters."),
    ("submission_id", "", "This field may not be blank."),
    ("colour", "red", "Unknown field."),
]


def test_driver_memory_and_max_runtime_are_kept_and_default_from_the_settings(
        alice, entry_file, settings):
    settings.DMARKET_DRIVER_MEMORY_MB = 2048
    settings.DMARKET_JOB_MAX_RUNTIME = 600
    given = submit(alice, entry_file, driver_memory_mb=4096, max_runtime=30).json()
    default = submit(alice, entry_file).json()

    assert (given["driver_memory_mb"], given["max_runtime"]) == (4096, 30)
    assert (default["driver_memory_mb"], default["max_runtime"]) == (2048, 600)


def fill(value, tmp):
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    if isinstance(value, list):
        return [fill(item, tmp) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, tmp) for key, item in value.items()}
    return value


# An operator's entry file may be a path on the server, checked there.
OPERATOR_BAD_FIELDS = [
    ("entry_file", "app.py", NOT_ABSOLUTE),
    ("entry_file", "file:app.py", NOT_ABSOLUTE),
    ("entry_file", "{tmp}/missing.py", UNREADABLE),
    ("entry_file", "{tmp}/a-directory.py", UNREADABLE),
    ("entry_file", "{tmp}/notes.txt", ENTRY_EXT),
]


def assert_bad_field_is_400(user, tmp_path, entry_file, field, value, message):
    (tmp_path / "a-directory.py").mkdir()
    (tmp_path / "notes.txt").write_text("not code")
    body = {"name": "job", "entry_file": entry_file}
    if value is MISSING:
        del body[field]
    else:
        value = fill(value, tmp_path)
        body[field] = value
    message = message.format(v=value) if "{v" in message else message

    response = client_for(user).post("/api/jobs/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": f"{field}: {message}", "errors": {field: [message]}}
    assert_nothing_written(user)


@pytest.mark.parametrize("field, value, message", BAD_FIELDS,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_FIELDS)])
def test_bad_field_is_400_naming_it_and_writes_nothing(alice, entry_file, tmp_path,
                                                       field, value, message):
    assert_bad_field_is_400(alice, tmp_path, entry_file, field, value, message)


@pytest.mark.parametrize("field, value, message", OPERATOR_BAD_FIELDS,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(OPERATOR_BAD_FIELDS)])
def test_operators_bad_server_path_is_400_naming_it(staff, server_file, tmp_path,
                                                   field, value, message):
    assert_bad_field_is_400(staff, tmp_path, server_file, field, value, message)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_entry_file_the_server_cannot_read_is_400(staff, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    path = locked / "app.py"
    path.write_text("print(1)\n")
    locked.chmod(0)
    try:
        response = submit(staff, str(path))
    finally:
        locked.chmod(0o700)

    message = f"{path} is not a file the server can read"
    assert response.status_code == 400
    assert response.json() == {"detail": f"entry_file: {message}",
                               "errors": {"entry_file": [message]}}
    assert_nothing_written(staff)


# --- Files on the server or its machines: operators only -----------------------------------

# (field, value): a path, file:// and local: for each field; {tmp} holds app.py, util.py,
# data.zip and conf.txt, and refusing them says nothing of whether they exist.
SERVER_PATHS = [
    (field, value)
    for field, name in (("entry_file", "app.py"), ("libs", "util.py"),
                        ("archives", "data.zip#data"), ("files", "conf.txt#conf"))
    for value in (f"{{tmp}}/{name}", f"file://{{tmp}}/{name}", f"local:/opt/{name}",
                  f"{{tmp}}/missing/{name}")
] + [("files", "/etc/passwd"), ("libs", "file:///etc/passwd")]


@pytest.fixture
def server_files(tmp_path):
    for name in ("app.py", "util.py", "data.zip", "conf.txt"):
        (tmp_path / name).write_text("x")
    return tmp_path


@pytest.mark.parametrize("field, value", SERVER_PATHS)
def test_a_users_server_path_is_400_naming_the_field(alice, entry_file, server_files,
                                                     field, value):
    value = fill(value, server_files)
    message = SERVER_FILE.format(v=value)

    if field == "entry_file":
        response = submit(alice, value)
        expected = {"detail": f"entry_file: {message}", "errors": {"entry_file": [message]}}
    else:
        response = submit(alice, entry_file, **{field: ["hdfs://nn/ok.zip", value]})
        expected = {"detail": f"{field}.1: {message}", "errors": {field: {"1": [message]}}}

    assert response.status_code == 400
    assert response.json() == expected
    assert_nothing_written(alice)


def test_an_operator_may_name_files_on_the_server_and_its_machines(staff, server_files):
    tmp = server_files
    fields = {"libs": [str(tmp / "util.py"), f"file://{tmp}/util.py", "local:/opt/util.py"],
              "archives": [f"file://{tmp}/data.zip#data", "local:/opt/data.zip#d"],
              "files": [f"{tmp}/conf.txt#conf", "local:/etc/hosts"]}

    response = submit(staff, str(tmp / "app.py"), **fields)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == job_json(body["id"], "operator", str(tmp / "app.py"), body["created_at"],
                            **fields)


@pytest.mark.parametrize("field, extension_message", [
    ("libs", LIB_EXT),
    ("archives", "{v!r} should end with one of .zip, .tar.gz, .tgz, .tar, .jar"),
])
def test_bad_list_item_is_named_by_its_index(alice, entry_file, field, extension_message):
    bad = "https://example.org/notes.txt"

    response = submit(alice, entry_file, **{field: [bad, "hdfs://nn/ok.zip", bad]})

    message = extension_message.format(v=bad)
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"{field}.0: {message}; {field}.2: {message}",
        "errors": {field: {"0": [message], "2": [message]}},
    }
    assert_nothing_written(alice)


def test_archive_with_a_bad_alias_is_400(alice, entry_file):
    response = submit(alice, entry_file, archives=["a.zip#bad alias"])

    message = BAD_ALIAS.format(v="a.zip#bad alias")
    assert response.status_code == 400
    assert response.json() == {"detail": f"archives.0: {message}",
                               "errors": {"archives": {"0": [message]}}}
    assert_nothing_written(alice)


def test_every_bad_field_is_reported_at_once(alice):
    response = client_for(alice).post("/api/jobs/", {"cores": 0, "colour": "red"},
                                      format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "name: This field is required.; entry_file: This field is required.; "
                  "cores: Ensure this value is greater than or equal to 1.; "
                  "colour: Unknown field.",
        "errors": {"name": ["This field is required."],
                   "entry_file": ["This field is required."],
                   "cores": ["Ensure this value is greater than or equal to 1."],
                   "colour": ["Unknown field."]},
    }
    assert_nothing_written(alice)


def test_body_that_is_not_an_object_is_400(alice):
    response = client_for(alice).post("/api/jobs/", [1], format="json")

    message = "Invalid data. Expected a dictionary, but got list."
    assert response.status_code == 400
    assert response.json() == {"detail": message, "errors": {"non_field_errors": [message]}}
    assert_nothing_written(alice)


def test_malformed_json_is_400(alice):
    response = client_for(alice).post("/api/jobs/", b'{"name": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - ")
    assert_nothing_written(alice)


@pytest.mark.parametrize("body", [
    {"name": "\ud800"},
    {"entry_file": "/tmp/x\ud800.py"},
    {"libs": ["/tmp/x\udfff.py"]},
    {"app_params": ["\udfff"]},
    {"app_params": "a \ud800"},
    {"\ud800": 1},
])
def test_lone_surrogates_are_400_not_500(alice, entry_file, body):
    # Lone surrogates are legal JSON escapes but not text: PostgreSQL refuses to store them
    # and the JSON renderer cannot echo them back in an error message.
    raw = json.dumps({"name": "job", "entry_file": entry_file, **body})
    client = client_for(alice)
    client.raise_request_exception = False

    response = client.post("/api/jobs/", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the body holds a lone surrogate "
                                         "(\\ud800 to \\udfff), which is not text."}
    assert_nothing_written(alice)


# --- Not enough credits: 402, nothing written --------------------------------------------------

def test_cap_above_available_is_402_and_writes_nothing(alice, entry_file):
    response = submit(alice, entry_file, max_credits="100.000001")

    assert response.status_code == 402
    assert response.json() == {
        "detail": MESSAGE_402.format(needed="100.000001", available="100.000000")}
    assert_nothing_written(alice)


def test_eleventh_default_job_is_402(alice, entry_file):
    for _ in range(10):
        assert submit(alice, entry_file).status_code == 201

    response = submit(alice, entry_file)

    assert response.status_code == 402
    assert response.json() == {
        "detail": MESSAGE_402.format(needed="10.000000", available="0.000000")}
    assert Job.objects.count() == 10
    assert ledger_kinds(alice) == ["grant"] + ["hold"] * 10
    assert credits_of(alice) == {"balance": "100.000000", "held": "100.000000",
                                 "available": "0.000000", "earned": "0.000000",
                                 "spent": "0.000000"}


def test_402_counts_only_available_credits(alice, entry_file):
    assert submit(alice, entry_file, max_credits="95").status_code == 201

    response = submit(alice, entry_file, max_credits="5.5")

    assert response.status_code == 402
    assert response.json() == {"detail": MESSAGE_402.format(needed="5.500000",
                                                            available="5.000000")}
    assert submit(alice, entry_file, max_credits="5").status_code == 201


def test_402_with_a_submission_id_leaves_the_id_free(alice, entry_file):
    assert submit(alice, entry_file, max_credits="101", submission_id="s1").status_code == 402

    response = submit(alice, entry_file, max_credits="100", submission_id="s1")

    assert response.status_code == 201


# --- submission_id: retries ----------------------------------------------------------------------

def test_retry_with_the_same_fields_returns_the_first_job(alice, entry_file):
    first = submit(alice, entry_file, submission_id="run-7", app_params=["a"])
    retry = submit(alice, entry_file, submission_id="run-7", app_params=["a"])

    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert Job.objects.count() == 1
    assert ledger_kinds(alice) == ["grant", "hold"]
    assert credits_of(alice)["held"] == "10.000000"


@pytest.mark.parametrize("first_fields, retry_fields", [
    ({"app_params": "--lr 0.1 'a b'"}, {"app_params": ["--lr", "0.1", "a b"]}),
    ({}, {"max_credits": "10"}),
    ({"max_credits": "2.5"}, {"max_credits": 2.5}),
    ({}, {"cores": 1, "libs": [], "archives": [], "machine_type": "cpu"}),
])
def test_retry_spelling_the_same_fields_differently_is_the_same(alice, entry_file, first_fields,
                                                               retry_fields):
    first = submit(alice, entry_file, submission_id="s", **first_fields)
    retry = submit(alice, entry_file, submission_id="s", **retry_fields)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert ledger_kinds(alice) == ["grant", "hold"]


@pytest.mark.parametrize("changed", [
    {"name": "other"}, {"cores": 2}, {"max_credits": "9"}, {"app_params": ["b"]},
    {"machine_type": "gpu"}, {"entry_file": "hdfs://nn/app.py"},
])
def test_same_id_with_different_fields_is_409(alice, entry_file, changed):
    first = submit(alice, entry_file, submission_id="run-7", app_params=["a"]).json()

    response = submit(alice, entry_file, **{"submission_id": "run-7", "app_params": ["a"],
                                            **changed})

    assert response.status_code == 409
    assert response.json() == {"detail": f"submission_id 'run-7' was already used by job "
                                         f"{first['id']} with different fields."}
    assert Job.objects.count() == 1
    assert ledger_kinds(alice) == ["grant", "hold"]


def test_different_users_may_use_the_same_id(alice, bob, entry_file):
    a = submit(alice, entry_file, submission_id="same")
    b = submit(bob, entry_file, submission_id="same")

    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert (a.json()["owner"], b.json()["owner"]) == ("alice", "bob")
    assert ledger_kinds(alice) == ledger_kinds(bob) == ["grant", "hold"]


def test_retry_of_a_cancelled_job_returns_it_without_a_new_hold(alice, entry_file):
    job_id = submit(alice, entry_file, submission_id="s").json()["id"]
    assert client_for(alice).post(f"/api/jobs/{job_id}/cancel/").status_code == 200

    retry = submit(alice, entry_file, submission_id="s")

    assert retry.status_code == 200
    assert (retry.json()["id"], retry.json()["status"]) == (job_id, "CANCELLED")
    assert ledger_kinds(alice) == ["grant", "hold", "release"]
    assert credits_of(alice)["held"] == "0.000000"


def test_jobs_without_submission_id_are_never_deduplicated(alice, entry_file):
    a = submit(alice, entry_file)
    b = submit(alice, entry_file)

    assert (a.status_code, b.status_code) == (201, 201)
    assert Job.objects.count() == 2


# --- Spark properties (conf) and a JAR's main class ----------------------------------------------

JAR = "https://example.org/apps/app.jar"
NOT_ALLOWED = ("{key}: this property is not one a job may set ({why}); the allowed ones are in "
               "doc/spark.md")
MARKET_SETS = "{key}: the market sets this property from the job's {field}; use {option} instead"


def assert_bad_conf_is_400(user, conf, message, **fields):
    response = submit(user, fields.pop("entry_file", "https://example.org/apps/app.py"),
                      conf=conf, **fields)

    assert response.status_code == 400
    assert response.json() == {"detail": f"conf: {message}", "errors": {"conf": [message]}}
    assert_nothing_written(user)


def test_allowed_spark_properties_are_stored_and_shown(alice, entry_file):
    conf = {"spark.sql.shuffle.partitions": "8", "spark.speculation": "true",
            "spark.executor.memoryOverhead": "512m", "spark.task.cpus": "1",
            "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
            "spark.sql.session.timeZone": "UTC", "spark.default.parallelism": ""}

    response = submit(alice, entry_file, conf=conf)

    assert response.status_code == 201
    body = response.json()
    assert body == job_json(body["id"], "alice", entry_file, body["created_at"], conf=conf)
    assert Job.objects.get().conf == conf
    shown = client_for(alice).get(f"/api/jobs/{body['id']}/")
    assert (shown.status_code, shown.json()["conf"]) == (200, conf)


@pytest.mark.parametrize("key, message", [
    ("spark.driver.extraJavaOptions", NOT_ALLOWED.format(
        key="spark.driver.extraJavaOptions", why="it touches the driver's JVM options")),
    ("spark.executor.extraJavaOptions", NOT_ALLOWED.format(
        key="spark.executor.extraJavaOptions", why="it touches the executors' JVM options")),
    ("spark.authenticate", NOT_ALLOWED.format(
        key="spark.authenticate", why="it touches the cluster's security")),
    ("spark.network.crypto.enabled", NOT_ALLOWED.format(
        key="spark.network.crypto.enabled", why="it touches the cluster's security")),
    ("spark.io.encryption.enabled", NOT_ALLOWED.format(
        key="spark.io.encryption.enabled", why="it touches the cluster's security")),
    ("spark.executorEnv.LD_PRELOAD", NOT_ALLOWED.format(
        key="spark.executorEnv.LD_PRELOAD", why="it sets the environment of the job's processes")),
    ("spark.executorEnv.PYSPARK_PYTHON", NOT_ALLOWED.format(
        key="spark.executorEnv.PYSPARK_PYTHON",
        why="it sets the environment of the job's processes")),
    ("spark.pyspark.python", NOT_ALLOWED.format(
        key="spark.pyspark.python", why="it chooses the program the job's processes run")),
    ("spark.master", NOT_ALLOWED.format(
        key="spark.master", why="it chooses the master or how the job is submitted")),
    ("spark.submit.deployMode", NOT_ALLOWED.format(
        key="spark.submit.deployMode", why="it chooses the master or how the job is submitted")),
    ("spark.driver.host", NOT_ALLOWED.format(
        key="spark.driver.host", why="it sets the driver's address or ports")),
    ("spark.blockManager.port", NOT_ALLOWED.format(
        key="spark.blockManager.port", why="it sets the driver's address or ports")),
    ("spark.driver.extraClassPath", NOT_ALLOWED.format(
        key="spark.driver.extraClassPath", why="it changes the classpath; give JARs with --lib")),
    ("spark.jars.packages", NOT_ALLOWED.format(
        key="spark.jars.packages", why="it changes the classpath; give JARs with --lib")),
    ("spark.ui.enabled", NOT_ALLOWED.format(
        key="spark.ui.enabled", why="it touches the driver's web UI, which the market keeps off")),
    ("spark.eventLog.enabled", NOT_ALLOWED.format(
        key="spark.eventLog.enabled", why="the market sets the event log, which billing reads")),
    ("spark.dmarket.job", NOT_ALLOWED.format(
        key="spark.dmarket.job", why="it is the market's own")),
    ("spark.dynamicAllocation.enabled", NOT_ALLOWED.format(
        key="spark.dynamicAllocation.enabled",
        why="the market gives the job a fixed number of cores, its --cores")),
    ("spark.executor.resource.gpu.amount", NOT_ALLOWED.format(
        key="spark.executor.resource.gpu.amount",
        why="the market assigns resources by the job's --machine-type")),
    ("spark.plugins", NOT_ALLOWED.format(
        key="spark.plugins", why="it names plugins, listeners or classes to load")),
    ("spark.kryo.registrator", NOT_ALLOWED.format(
        key="spark.kryo.registrator", why="it names plugins, listeners or classes to load")),
    ("spark.sql.warehouse.dir", NOT_ALLOWED.format(
        key="spark.sql.warehouse.dir",
        why="it touches catalogs, the warehouse or the Hive metastore")),
    ("spark.sql.catalog.evil", NOT_ALLOWED.format(
        key="spark.sql.catalog.evil",
        why="it touches catalogs, the warehouse or the Hive metastore")),
    ("spark.hadoop.fs.s3a.impl", NOT_ALLOWED.format(
        key="spark.hadoop.fs.s3a.impl", why="it names classes to load")),
    ("spark.no.such.property", NOT_ALLOWED.format(
        key="spark.no.such.property", why="it is not on the allowlist")),
    ("spark.executor.memory", MARKET_SETS.format(
        key="spark.executor.memory", field="executor_memory_mb", option="--executor-memory")),
    ("spark.executor.cores", MARKET_SETS.format(
        key="spark.executor.cores", field="cores", option="--cores")),
    ("spark.cores.max", MARKET_SETS.format(key="spark.cores.max", field="cores", option="--cores")),
    ("spark.driver.memory", MARKET_SETS.format(
        key="spark.driver.memory", field="driver_memory_mb", option="--driver-memory")),
    ("spark.jars", MARKET_SETS.format(key="spark.jars", field="libs", option="--lib")),
])
def test_a_property_a_job_may_not_set_is_400_naming_it(alice, key, message):
    # With an allowed one beside it: one refused property refuses the submission.
    assert_bad_conf_is_400(alice, {"spark.sql.shuffle.partitions": "8", key: "x"}, message)


@pytest.mark.parametrize("key", ["sql.shuffle.partitions", "spark.", "spark.a b",
                                 "spark.x=y", "Spark.sql.x", "spark." + "x" * 201])
def test_a_key_that_is_no_spark_property_is_400(alice, key):
    assert_bad_conf_is_400(alice, {key: "1"}, f"{key!r}: not a Spark property: give spark. and "
                                              "then letters, digits, '.', '_' or '-' (at most "
                                              "200)")


def test_more_than_100_properties_is_400(alice):
    conf = {f"spark.sql.x{i}": "1" for i in range(101)}

    assert_bad_conf_is_400(alice, conf, "at most 100 properties")


def test_100_properties_are_accepted(alice, entry_file):
    conf = {f"spark.sql.x{i}": "1" for i in range(100)}

    assert submit(alice, entry_file, conf=conf).status_code == 201


@pytest.mark.parametrize("value, message", [
    ("a\nb", "spark.sql.x: the value contains a control character"),
    ("a\x7fb", "spark.sql.x: the value contains a control character"),
])
def test_a_value_with_a_control_character_is_400(alice, value, message):
    assert_bad_conf_is_400(alice, {"spark.sql.x": value}, message)


def test_a_value_longer_than_1000_characters_is_400(alice, entry_file):
    response = submit(alice, entry_file, conf={"spark.sql.x": "x" * 1001})

    message = "Ensure this field has no more than 1000 characters."
    assert response.status_code == 400
    assert response.json() == {"detail": f"conf.spark.sql.x: {message}",
                               "errors": {"conf": {"spark.sql.x": [message]}}}
    assert_nothing_written(alice)


@pytest.mark.parametrize("value, message", [
    (None, "This field may not be null."),
    (True, "Not a valid string."),
    (["a"], "Not a valid string."),
])
def test_a_value_that_is_no_string_is_400(alice, entry_file, value, message):
    response = submit(alice, entry_file, conf={"spark.sql.x": value})

    assert response.status_code == 400
    assert response.json() == {"detail": f"conf.spark.sql.x: {message}",
                               "errors": {"conf": {"spark.sql.x": [message]}}}
    assert_nothing_written(alice)


@pytest.mark.parametrize("cores, value", [(1, "2"), (1, "0"), (1, "-1"), (1, "one"), (4, "5"),
                                          (4, "1.5"), (1, "")])
def test_task_cpus_past_an_executors_cores_is_400(alice, settings, cores, value):
    settings.DMARKET_EXECUTOR_CORES = cores
    plural = "s" if cores != 1 else ""
    assert_bad_conf_is_400(
        alice, {"spark.task.cpus": value},
        f"spark.task.cpus: give a whole number from 1 to {cores}: this market's executors have "
        f"{cores} core{plural}, and a task that needs more never runs")


def test_task_cpus_up_to_an_executors_cores_is_accepted(alice, entry_file, settings):
    settings.DMARKET_EXECUTOR_CORES = 4

    response = submit(alice, entry_file, conf={"spark.task.cpus": "4"})

    assert (response.status_code, response.json()["conf"]) == (201, {"spark.task.cpus": "4"})


def test_only_the_built_in_serializers_are_accepted(alice):
    assert_bad_conf_is_400(
        alice, {"spark.serializer": "org.example.Evil"},
        "spark.serializer: give org.apache.spark.serializer.KryoSerializer or "
        "org.apache.spark.serializer.JavaSerializer")


def test_a_main_class_with_a_jar_entry_file_is_stored(alice):
    response = submit(alice, JAR, main_class="org.example.spark.Main$App")

    assert response.status_code == 201
    body = response.json()
    assert body == job_json(body["id"], "alice", JAR, body["created_at"],
                            main_class="org.example.spark.Main$App")
    assert Job.objects.get().main_class == "org.example.spark.Main$App"


def test_a_main_class_with_a_py_entry_file_is_400(alice, entry_file):
    response = submit(alice, entry_file, main_class="org.example.Main")

    message = "Only a JAR entry file has a main class; a .py one runs as it is."
    assert response.status_code == 400
    assert response.json() == {"detail": f"main_class: {message}",
                               "errors": {"main_class": [message]}}
    assert_nothing_written(alice)


@pytest.mark.parametrize("name", ["org..Main", "1org.Main", "org.Main.", "org Main", "a-b",
                                  "org.Main;rm"])
def test_a_main_class_that_is_no_java_class_name_is_400(alice, name):
    response = submit(alice, JAR, main_class=name)

    message = f"{name!r} is not a Java class name (such as org.example.Main)."
    assert response.status_code == 400
    assert response.json() == {"detail": f"main_class: {message}",
                               "errors": {"main_class": [message]}}
    assert_nothing_written(alice)


def test_a_main_class_longer_than_300_characters_is_400(alice):
    response = submit(alice, JAR, main_class="a" * 301)

    message = "Ensure this field has no more than 300 characters."
    assert response.status_code == 400
    assert response.json() == {"detail": f"main_class: {message}",
                               "errors": {"main_class": [message]}}
    assert_nothing_written(alice)
