"""dmarket jobs submit with local files: they are uploaded into the user's file store first
(content-addressed: bytes the store holds already are not sent again) and the job names
them as dmarket:// files, so the server never reads a path of the user's machine."""

import hashlib

import pytest

from dmarket.files import views as files_views
from dmarket.files.models import FileVersion, JobInput
from dmarket.jobs.models import Job


def sha(data):
    return hashlib.sha256(data).hexdigest()


def stored_uri(data, name, version=1):
    return f"dmarket://job-files/{sha(data)[:16]}/{name}@{version}"


@pytest.fixture
def puts(monkeypatch):
    """The names the server received a PUT for, in order (the live server runs in this
    process)."""
    seen = []
    put = files_views.FileView.put

    def counting(self, request, name):
        seen.append(name)
        return put(self, request, name)

    monkeypatch.setattr(files_views.FileView, "put", counting)
    return seen


@pytest.fixture
def app(tmp_path, monkeypatch):
    """app.py, util.py, data.zip and conf.txt in the working directory, each its own bytes."""
    contents = {"app.py": b"import util\n", "util.py": b"X = 1\n", "data.zip": b"PK\x03\x04",
                "conf.txt": b"lr=0.1\n"}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    return contents


def test_local_files_are_uploaded_and_the_job_names_them(dmarket, dmarket_json, user, app,
                                                         puts, tmp_path):
    job = dmarket_json("jobs", "submit", "app.py", "--lib", "util.py",
                       "--archive", "data.zip#data", "--file", "./conf.txt#conf",
                       "--lib", "https://example.org/y.py")

    assert (job["name"], job["entry_file"], job["libs"], job["archives"], job["files"]) == (
        "app", stored_uri(app["app.py"], "app.py"),
        [stored_uri(app["util.py"], "util.py"), "https://example.org/y.py"],
        [stored_uri(app["data.zip"], "data.zip") + "#data"],
        [stored_uri(app["conf.txt"], "conf.txt") + "#conf"])
    assert sorted(puts) == sorted(f"job-files/{sha(data)[:16]}/{name}"
                                  for name, data in app.items())
    versions = FileVersion.objects.select_related("file")
    assert sorted((v.file.name, v.version, v.sha256, v.local_path().read_bytes(), v.file.public)
                  for v in versions) == sorted(
        (f"job-files/{sha(data)[:16]}/{name}", 1, sha(data), data, False)
        for name, data in app.items())
    # Pinned like any dmarket:// file the job names.
    assert sorted(JobInput.objects.filter(run__job=job["id"]).values_list("uri", flat=True)) == (
        sorted(stored_uri(data, name) for name, data in app.items()))


def test_the_job_shows_the_stored_files(dmarket, user, app):
    result = dmarket("jobs", "submit", "app.py", "--lib", "util.py")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # no progress display when stderr is not a terminal
    assert f"entry_file           {stored_uri(app['app.py'], 'app.py')}\n" in result.stdout
    assert f"libs                 {stored_uri(app['util.py'], 'util.py')}\n" in result.stdout


def test_submitting_the_same_files_again_sends_their_bytes_once(dmarket_json, user, app, puts):
    first = dmarket_json("jobs", "submit", "app.py", "--lib", "util.py")
    second = dmarket_json("jobs", "submit", "app.py", "--lib", "util.py", "--file", "app.py#a")

    assert len(puts) == 2
    assert FileVersion.objects.count() == 2
    assert (second["entry_file"], second["libs"]) == (first["entry_file"], first["libs"])
    assert second["files"] == [first["entry_file"] + "#a"]
    assert Job.objects.count() == 2


def test_a_file_named_twice_in_one_job_is_sent_once(dmarket_json, user, app, puts):
    job = dmarket_json("jobs", "submit", "app.py", "--file", "app.py#copy", "--file",
                       "./app.py")

    assert puts == [f"job-files/{sha(app['app.py'])[:16]}/app.py"]
    uri = stored_uri(app["app.py"], "app.py")
    assert (job["entry_file"], job["files"]) == (uri, [uri + "#copy", uri])


def test_a_file_put_in_the_store_by_hand_is_used_as_it_is(dmarket, dmarket_json, user, app,
                                                          puts):
    assert dmarket("files", "put", "app.py", "mnist/app.py").exit_code == 0

    job = dmarket_json("jobs", "submit", "app.py")

    assert job["entry_file"] == "dmarket://mnist/app.py@1"
    assert puts == ["mnist/app.py"]


def test_the_same_bytes_under_another_file_name_are_uploaded(dmarket_json, user, app, puts,
                                                             tmp_path):
    # Spark names the fetched copy after the stored file: util.py must stay util.py.
    (tmp_path / "copy.py").write_bytes(app["util.py"])

    job = dmarket_json("jobs", "submit", "app.py", "--lib", "util.py", "--lib", "copy.py")

    assert job["libs"] == [stored_uri(app["util.py"], "util.py"),
                           stored_uri(app["util.py"], "copy.py")]
    assert len(puts) == 3


def test_a_changed_file_is_uploaded_anew(dmarket_json, user, app, puts, tmp_path):
    first = dmarket_json("jobs", "submit", "app.py")
    (tmp_path / "app.py").write_bytes(b"import util  # v2\n")

    second = dmarket_json("jobs", "submit", "app.py")

    assert first["entry_file"] == stored_uri(app["app.py"], "app.py")
    assert second["entry_file"] == stored_uri(b"import util  # v2\n", "app.py")
    assert len(puts) == 2


def test_a_missing_local_file_is_a_usage_error_and_nothing_is_sent(dmarket, user, app, puts):
    result = dmarket("jobs", "submit", "app.py", "--archive", "missing.zip#m")

    assert result.exit_code == 2
    assert "Invalid value for '--archive': missing.zip: no such file here (a local file is " \
           "uploaded into your store; a URI such as dmarket://NAME or https://... is passed " \
           "as it is)" in result.stderr
    assert puts == [] and not Job.objects.exists()


def test_a_directory_is_not_a_file(dmarket, user, app, tmp_path):
    (tmp_path / "pkg").mkdir()

    result = dmarket("jobs", "submit", "pkg")

    assert result.exit_code == 2
    assert "Invalid value for 'ENTRY_FILE': pkg: no such file here" in result.stderr


def test_a_file_name_the_store_cannot_keep_is_a_usage_error(dmarket, user, app, tmp_path):
    (tmp_path / "my app.py").write_text("x")

    result = dmarket("jobs", "submit", "my app.py")

    assert result.exit_code == 2
    assert ("Invalid value for 'ENTRY_FILE': my app.py: the file store cannot keep the name "
            "'my app.py' (letters, digits, '.', '_' and '-' only); rename the file"
            in " ".join(result.stderr.split()))


def test_uploads_over_the_quota_send_nothing(dmarket, user, app, puts, settings, tmp_path):
    settings.DMARKET_STORAGE_QUOTA_MB = 1
    (tmp_path / "big.zip").write_bytes(b"x" * (600 * 1024))
    (tmp_path / "big2.zip").write_bytes(b"y" * (600 * 1024))

    result = dmarket("jobs", "submit", "app.py", "--archive", "big.zip", "--archive",
                     "big2.zip")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"dmarket: Storing {1200 * 1024 + 12} more bytes would "
                                    "bring your files to")
    assert puts == [] and not Job.objects.exists()


def test_a_server_path_is_passed_and_refused_by_the_server(dmarket, user, puts):
    # file:// names a file on the server (for operators): not a local file to upload.
    result = dmarket("jobs", "submit", "https://example.org/app.py", "--lib",
                     "file:///etc/passwd.py")

    assert result.exit_code == 1
    assert result.stderr == (
        "dmarket: libs.0: 'file:///etc/passwd.py': only operators may name files on the "
        "server; put the file into the file store (dmarket files put, or let dmarket jobs "
        "submit upload it) and name it dmarket://NAME\n")
    assert puts == [] and not Job.objects.exists()


def test_progress_on_a_terminal(dmarket, user, app, tmp_path, monkeypatch):
    from dmarket_client import cli_shared

    monkeypatch.setattr(cli_shared, "stderr_is_tty", lambda: True)
    (tmp_path / "w.zip").write_bytes(b"w" * (2 * 1024 * 1024 + 5))

    result = dmarket("jobs", "submit", "app.py", "--archive", "w.zip")

    assert result.exit_code == 0, result.stderr
    name = f"job-files/{sha(b'w' * (2 * 1024 * 1024 + 5))[:16]}/w.zip"
    assert f"{name}  1.0 MB of 2.0 MB (49%)" in result.stderr
    assert f"{name}  2.0 MB of 2.0 MB (100%)" in result.stderr
