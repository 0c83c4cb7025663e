"""dmarket files ...: put, get, versions, where, ls, rm, put-many, publish, against a live
server; and jobs naming the stored files."""

import hashlib
import json

import pytest
from django.contrib.auth import get_user_model

from dmarket.accounts.models import ApiToken
# The file store on a real SeaweedFS cluster (one per session): dmarket's own fixtures, which
# the client's tests do not see otherwise.
from dmarket.conftest import s3_store, seaweed  # noqa: F401
from dmarket.files.models import FileVersion
from dmarket.jobs.models import Job


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def local(tmp_path):
    """write(name, data): a local file under tmp_path/local."""

    def write(name, data):
        path = tmp_path / "local" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return write


@pytest.fixture
def other(db):
    """bob, another user, as DMARKET_TOKEN for the CLI's env."""
    bob = get_user_model().objects.create_user("bob", "b@example.org", "a long password 1")
    return {"DMARKET_TOKEN": ApiToken.issue(bob)[1]}


def test_put_prints_the_new_version(dmarket, user, local):
    path = local("train.py", b"print('train')\n")

    result = dmarket("files", "put", path, "mnist/train.py")

    assert result.exit_code == 0, result.stderr
    version = FileVersion.objects.get()
    assert result.stdout.splitlines() == [
        "uri         dmarket://mnist/train.py@1",
        "owner       ada",
        "name        mnist/train.py",
        "version     1",
        "size        15",
        f"sha256      {sha(path.read_bytes())}",
        "public      no",
        f"created_at  {version.created_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    assert version.local_path().read_bytes() == path.read_bytes()


def test_put_get_versions_round_trip(dmarket, dmarket_json, user, local, tmp_path,
                                     monkeypatch):
    for n in (1, 2, 3):
        answer = dmarket_json("files", "put", local("x.csv", b"v%d" % n), "data/x.csv")
        assert (answer["version"], answer["sha256"]) == (n, sha(b"v%d" % n))
    monkeypatch.chdir(tmp_path)

    latest = dmarket("files", "get", "data/x.csv")
    first = dmarket_json("files", "get", "data/x.csv@1", tmp_path / "first.csv")
    (tmp_path / "into").mkdir()
    second = dmarket_json("files", "get", "dmarket://data/x.csv@2", tmp_path / "into")

    assert latest.exit_code == 0, latest.stderr
    assert latest.stdout == "data/x.csv@3 -> x.csv (2 B)\n"
    assert (tmp_path / "x.csv").read_bytes() == b"v3"
    assert first == {"name": "data/x.csv", "version": 1, "size": 2, "sha256": sha(b"v1"),
                     "local_path": str(tmp_path / "first.csv")}
    assert (tmp_path / "first.csv").read_bytes() == b"v1"
    assert (tmp_path / "into" / "x.csv").read_bytes() == b"v2" and second["version"] == 2
    assert not list(tmp_path.rglob("*.part"))
    assert [v["version"] for v in dmarket_json("files", "versions", "data/x.csv")] == [3, 2, 1]
    assert [v["version"] for v in dmarket_json("files", "versions", "data/x.csv",
                                               "-n", "2")] == [3, 2]
    table = dmarket("files", "versions", "data/x.csv").stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "SIZE", "CREATED", "PUBLIC", "SHA-256"]
    assert table[1].split()[:4] == ["data/x.csv", "3", "2", "B"]


def test_get_of_a_missing_file_or_version(dmarket, user, local):
    dmarket("files", "put", local("x.csv", b"1"), "x.csv")

    missing = dmarket("files", "get", "nope.csv")
    old = dmarket("files", "get", "x.csv@4")

    assert (missing.exit_code, missing.stderr) == (1, "dmarket: No such file: "
                                                      "dmarket://nope.csv\n")
    assert (old.exit_code, old.stderr) == (1, "dmarket: No version 4 of dmarket://x.csv.\n")


def test_ls_and_patterns(dmarket, dmarket_json, user, local):
    for name in ("mnist/train.py", "mnist/test.py", "notes.txt"):
        dmarket("files", "put", local("f", name.encode()), name)
    dmarket("files", "put", local("f", b"again"), "notes.txt")

    everything = dmarket_json("files", "ls")
    mnist = dmarket_json("files", "ls", "mnist/*")

    assert [(f["name"], f["version"]) for f in everything] == [
        ("mnist/test.py", 1), ("mnist/train.py", 1), ("notes.txt", 2)]
    assert [f["name"] for f in mnist] == ["mnist/test.py", "mnist/train.py"]
    assert dmarket("files", "ls", "*.nothing").stdout.splitlines() == [
        "NAME  VERSION  SIZE  CREATED  PUBLIC  SHA-256"]


def test_rm_a_version_then_all(dmarket, dmarket_json, user, local):
    for n in (1, 2, 3):
        dmarket("files", "put", local("m.zip", b"%d" % n), "m.zip")

    one = dmarket("files", "rm", "m.zip@2")
    rest = dmarket("files", "rm", "m.zip")
    again = dmarket("files", "rm", "m.zip")

    assert (one.exit_code, one.stdout) == (0, "Deleted m.zip: version 2.\n")
    assert (rest.exit_code, rest.stdout) == (0, "Deleted m.zip: versions 1, 3.\n")
    assert (again.exit_code, again.stderr) == (1, "dmarket: No such file: dmarket://m.zip\n")
    assert FileVersion.objects.count() == 0


def test_rm_of_a_file_a_queued_job_uses_is_refused(dmarket, dmarket_json, user, local):
    dmarket("files", "put", local("app.py", b"print(1)"), "app.py")
    job = dmarket_json("jobs", "submit", "dmarket://app.py", "--file", "dmarket://app.py#a")

    result = dmarket("files", "rm", "app.py")

    assert job["entry_file"] == "dmarket://app.py@1"
    assert job["files"] == ["dmarket://app.py@1#a"]
    assert result.exit_code == 1
    assert result.stderr == (f"dmarket: dmarket://app.py@1 is in use by job {job['id']} "
                             "(QUEUED); delete it once that job has finished.\n")
    Job.objects.filter(pk=job["id"]).update(status=Job.SUCCEEDED)
    assert dmarket("files", "rm", "app.py").exit_code == 0


def test_private_unless_published(dmarket, dmarket_json, user, local, other, tmp_path):
    dmarket("files", "put", local("w.bin", b"weights"), "w.bin")
    target = tmp_path / "w.bin"

    hidden = dmarket("files", "get", "~ada/w.bin", target, env=other)
    dmarket("files", "publish", "w.bin")
    listed = dmarket_json("files", "ls", "--owner", "ada", env=other)
    fetched = dmarket("files", "get", "~ada/w.bin", target, env=other)
    dmarket("files", "unpublish", "w.bin")
    hidden_again = dmarket("files", "get", "~ada/w.bin", target, env=other)

    assert (hidden.exit_code, hidden.stderr) == (1, "dmarket: No such file: "
                                                    "dmarket://~ada/w.bin\n")
    assert [f["uri"] for f in listed] == ["dmarket://~ada/w.bin@1"]
    assert fetched.exit_code == 0 and target.read_bytes() == b"weights"
    assert hidden_again.exit_code == 1


def test_put_public(dmarket_json, user, local):
    assert dmarket_json("files", "put", "--public", local("a", b"a"), "a.txt")["public"] is True
    assert dmarket_json("files", "put", local("a", b"b"), "a.txt")["public"] is True
    assert dmarket_json("files", "put", "--private", local("a", b"c"), "a.txt")["public"] is False


def test_put_many(dmarket, dmarket_json, user, local, tmp_path, monkeypatch):
    local("data/a.csv", b"a")
    local("data/sub/b.csv", b"bb")
    local("data/sub/skip.txt", b"no")
    monkeypatch.chdir(tmp_path / "local")

    result = dmarket("files", "put-many", "data/**/*.csv", "datasets/")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "data/a.csv -> dmarket://datasets/a.csv@1 (1 B)",
        "data/sub/b.csv -> dmarket://datasets/sub/b.csv@1 (2 B)",
    ]
    assert [f["name"] for f in dmarket_json("files", "ls")] == ["datasets/a.csv",
                                                               "datasets/sub/b.csv"]
    nothing = dmarket("files", "put-many", "nothing/*.csv", "x")
    assert (nothing.exit_code, nothing.stderr) == (1, "dmarket: no file matches nothing/*.csv\n")


def test_a_bad_name_is_the_servers_message(dmarket, user, local):
    result = dmarket("files", "put", local("a", b"a"), "a b")

    assert result.exit_code == 1
    assert result.stderr == ("dmarket: name: 'a b': use segments of letters, digits, '.', '_' "
                             "and '-' separated by '/', each starting with a letter, digit or "
                             "'_'.\n")


@pytest.mark.parametrize("name", ["../a", "a/./b", "/a", "a//b"])
def test_a_name_a_url_would_change_is_a_usage_error(dmarket, user, local, name):
    result = dmarket("files", "put", local("a", b"a"), name)

    assert result.exit_code == 2
    assert "a file name is segments separated by '/'" in result.stderr
    assert FileVersion.objects.count() == 0


def test_usage(dmarket, dmarket_json, user, local, settings):
    settings.DMARKET_STORAGE_QUOTA_MB = 1
    dmarket("files", "put", local("a", b"x" * 1000), "a.bin")
    dmarket("files", "put", local("a", b"x" * 24), "a.bin")

    result = dmarket("files", "usage")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "used       1.0 KB (1024 bytes)",
        "quota      1.0 MB (1048576 bytes)",
        "available  1023.0 KB (1047552 bytes)",
        "files      1",
        "versions   2",
    ]
    assert dmarket_json("files", "usage")["available"] == 1047552


def test_put_many_over_the_quota_sends_nothing(dmarket, user, local, settings, tmp_path):
    settings.DMARKET_STORAGE_QUOTA_MB = 1
    local("d/a.bin", b"x" * 600 * 1024)
    local("d/b.bin", b"x" * 600 * 1024)

    result = dmarket("files", "put-many", tmp_path / "local" / "d" / "*.bin", "d")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"dmarket: Storing {1200 * 1024} more bytes would bring")
    assert FileVersion.objects.count() == 0


@pytest.mark.parametrize("checked_here", [True, False], ids=["client", "server"])
def test_over_the_quota_nothing_is_stored(dmarket, user, local, settings, monkeypatch,
                                          checked_here):
    from dmarket_client import files_cli

    settings.DMARKET_STORAGE_QUOTA_MB = 1
    big = local("big.bin", b"x" * (3 * 1024 * 1024))
    if not checked_here:
        # As when another upload took the room after the client looked: the server refuses.
        monkeypatch.setattr(files_cli, "check_room", lambda client, size: None)

    result = dmarket("files", "put", big, "big.bin")

    assert result.exit_code == 1
    assert result.stderr == (
        f"dmarket: Storing {3 * 1024 * 1024} more bytes would bring your files to "
        f"{3 * 1024 * 1024} bytes, over your quota of 1048576 bytes (1 MB; you use 0 bytes). "
        "Delete old versions with `dmarket files rm NAME@VERSION`.\n")
    assert FileVersion.objects.count() == 0


def test_progress_on_a_terminal(dmarket, user, local, tmp_path, monkeypatch):
    from dmarket_client import cli_shared

    monkeypatch.setattr(cli_shared, "stderr_is_tty", lambda: True)
    path = local("w.bin", b"w" * (2 * 1024 * 1024 + 5))

    put = dmarket("files", "put", path, "w.bin")
    get = dmarket("files", "get", "w.bin", tmp_path / "back.bin")

    assert put.exit_code == 0 and get.exit_code == 0, (put.stderr, get.stderr)
    assert "w.bin  1.0 MB of 2.0 MB (49%)" in put.stderr
    assert "w.bin  2.0 MB of 2.0 MB (100%)" in put.stderr
    assert "w.bin  2.0 MB of 2.0 MB (100%)" in get.stderr
    assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()


def test_help(dmarket):
    result = dmarket("files", "--help")

    assert result.exit_code == 0
    for command in ("put", "get", "versions", "ls", "rm", "put-many", "publish", "unpublish"):
        assert f"  {command} " in result.stdout
    assert json.loads(json.dumps(result.stdout))


# --- dmarket files where --------------------------------------------------------------------

def api_get(server, user, path, **params):
    """The API's own answer (status, body) to GET /api/PATH as the user."""
    import requests

    response = requests.get(f"{server}/api/{path}", params=params,
                            headers={"Authorization": f"Token {user.token}"}, timeout=30)
    return response.status_code, response.json()


def test_where_on_the_local_store(dmarket, user, local):
    dmarket("files", "put", local("x.csv", b"1"), "data/x.csv")
    dmarket("files", "put", local("x.csv", b"22"), "data/x.csv")

    latest = dmarket("files", "where", "data/x.csv")
    first = dmarket("files", "where", "dmarket://data/x.csv@1")

    assert latest.exit_code == 0, latest.stderr
    assert latest.stdout.splitlines() == [
        "data/x.csv@2: 1 copy readable now (local)",
        "SERVER                     ALIVE  VOLUMES  CHUNKS",
        "the central server's disk  yes    -        1",
    ]
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines()[0] == "data/x.csv@1: 1 copy readable now (local)"


def test_where_json_is_the_apis_answer(dmarket, dmarket_json, user, local, server):
    dmarket("files", "put", local("x.csv", b"1"), "data/x.csv")
    dmarket("files", "put", local("x.csv", b"22"), "data/x.csv")

    latest = dmarket_json("files", "where", "data/x.csv")
    first = dmarket("files", "where", "--json", "data/x.csv@1")

    assert latest == api_get(server, user, "file-replicas/data/x.csv")[1]
    assert latest == {
        "owner": "ada", "name": "data/x.csv", "version": 2, "sha256": sha(b"22"),
        "storage": "local", "copies": 1,
        "servers": [{"server": "the central server's disk", "volumes": [], "chunks": 1,
                     "alive": True}]}
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout) == api_get(server, user, "file-replicas/data/x.csv",
                                               version=1)[1]
    assert json.loads(first.stdout)["sha256"] == sha(b"1")


def test_where_of_another_users_file(dmarket, dmarket_json, user, local, other):
    dmarket("files", "put", local("w.bin", b"weights"), "w.bin")

    hidden = dmarket("files", "where", "~ada/w.bin", env=other)
    dmarket("files", "publish", "w.bin")
    shown = dmarket_json("files", "where", "dmarket://~ada/w.bin@1", env=other)
    table = dmarket("files", "where", "~ada/w.bin", env=other)
    # Their own name as ~OWNER is their own file.
    own = dmarket_json("files", "where", "~ada/w.bin")

    assert (hidden.exit_code, hidden.stdout, hidden.stderr) == (
        1, "", "dmarket: No such file: dmarket://~ada/w.bin\n")
    assert (shown["owner"], shown["name"], shown["version"]) == ("ada", "w.bin", 1)
    assert shown["sha256"] == sha(b"weights") and shown["copies"] == 1
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[0] == "w.bin@1: 1 copy readable now (local)"
    assert own == shown


def test_where_of_a_missing_file_or_version(dmarket, user, local):
    dmarket("files", "put", local("x.csv", b"1"), "x.csv")

    missing = dmarket("files", "where", "nope.csv")
    old = dmarket("files", "where", "x.csv@4")
    bad_version = dmarket("files", "where", "x.csv@0")
    bad_name = dmarket("files", "where", "a/../x.csv")

    assert (missing.exit_code, missing.stdout, missing.stderr) == (
        1, "", "dmarket: No such file: dmarket://nope.csv\n")
    assert (old.exit_code, old.stdout, old.stderr) == (
        1, "", "dmarket: No version 4 of dmarket://x.csv.\n")
    assert bad_version.exit_code == 2
    assert "'0' is not a version number" in bad_version.stderr
    # Not sent: the URL would resolve '..' away and ask about x.csv.
    assert bad_name.exit_code == 2
    assert "a file name is segments separated by '/'" in bad_name.stderr


def test_versions_of_a_name_with_dot_dot_is_refused_before_sending(dmarket, user, local):
    dmarket("files", "put", local("x.csv", b"1"), "x.csv")

    result = dmarket("files", "versions", "a/../x.csv")

    assert result.exit_code == 2
    assert "a file name is segments separated by '/'" in result.stderr


def test_where_json_of_a_missing_file(dmarket, user):
    result = dmarket("--json", "files", "where", "nope.csv")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "No such file: dmarket://nope.csv" in result.stderr


def test_where_on_seaweedfs_names_its_four_volume_servers(dmarket, dmarket_json, user, local,
                                                          server, s3_store, seaweed):
    data = b"s" * (5 * 1024 * 1024 + 3)  # two chunks: the gateway cuts at 4 MiB
    dmarket("files", "put", local("big.bin", data), "big.bin")

    result = dmarket("files", "where", "big.bin")
    answer = dmarket_json("files", "where", "big.bin@1")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "big.bin@1: 4 copies readable now (seaweedfs)"
    assert lines[1].split() == ["SERVER", "ALIVE", "VOLUMES", "CHUNKS"]
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == seaweed.volume_servers
    assert all(row[1] == "yes" and row[2] != "-" and row[3] == "2" for row in rows)
    assert answer == api_get(server, user, "file-replicas/big.bin")[1]
    assert (answer["storage"], answer["copies"], answer["sha256"]) == ("seaweedfs", 4,
                                                                       sha(data))
    assert [s["server"] for s in answer["servers"]] == seaweed.volume_servers
    assert FileVersion.objects.get().blob.startswith("blobs/")
