"""GET /api/files/<name>: a version's bytes, streamed, with its SHA-256 and version number;
another user's private file is 404 as if it did not exist."""

from dmarket.conftest import client_for

from .util import ANONYMOUS, sha, uploaded


def download(user, path):
    response = client_for(user).get(path)
    if response.status_code == 200:
        response.body = b"".join(response.streaming_content)
    return response


def test_latest_version_by_default(alice):
    uploaded(alice, "data/x.csv", b"v1")
    uploaded(alice, "data/x.csv", b"v2")

    response = download(alice, "/api/files/data/x.csv")

    assert response.status_code == 200
    assert response.body == b"v2"
    assert response["Content-Length"] == "2"
    assert response["X-Content-SHA256"] == sha(b"v2")
    assert response["X-File-Version"] == "2"
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'


def test_one_version(alice):
    uploaded(alice, "x.csv", b"v1")
    uploaded(alice, "x.csv", b"v2")

    response = download(alice, "/api/files/x.csv?version=1")

    assert (response.status_code, response.body, response["X-File-Version"]) == (200, b"v1",
                                                                                  "1")


def test_missing_version_is_404(alice):
    uploaded(alice, "x.csv", b"v1")

    response = download(alice, "/api/files/x.csv?version=7")

    assert response.status_code == 404
    assert response.json() == {"detail": "No version 7 of dmarket://x.csv."}


def test_bad_version_is_400(alice):
    response = download(alice, "/api/files/x.csv?version=0")

    assert response.status_code == 400
    assert response.json() == {"detail": "version: Must be at least 1.",
                               "errors": {"version": ["Must be at least 1."]}}


def test_missing_file_is_404(alice):
    response = download(alice, "/api/files/nope.csv")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such file: dmarket://nope.csv"}


def test_another_users_private_file_is_404(alice, bob):
    uploaded(alice, "secret.csv", b"s")

    mine = download(bob, "/api/files/secret.csv")
    theirs = download(bob, "/api/files/secret.csv?owner=alice")

    assert mine.status_code == theirs.status_code == 404
    assert mine.json() == {"detail": "No such file: dmarket://secret.csv"}
    # The same answer as for a name alice never used.
    assert theirs.json() == {"detail": "No such file: dmarket://~alice/secret.csv"}
    assert download(bob, "/api/files/never.csv?owner=alice").json() == {
        "detail": "No such file: dmarket://~alice/never.csv"}


def test_another_users_public_file(alice, bob):
    uploaded(alice, "shared.csv", b"for all", public="true")

    response = download(bob, "/api/files/shared.csv?owner=alice")

    assert (response.status_code, response.body) == (200, b"for all")


def test_operators_read_private_files(alice, staff):
    uploaded(alice, "secret.csv", b"s")

    response = download(staff, "/api/files/secret.csv?owner=alice")

    assert (response.status_code, response.body) == (200, b"s")


def test_anonymous_is_401(alice):
    uploaded(alice, "shared.csv", b"x", public="true")

    response = client_for().get("/api/files/shared.csv?owner=alice")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS


def test_bytes_the_disk_lost_are_503_not_500(alice, settings):
    from .util import uploaded

    version = uploaded(alice, "gone.bin", b"bytes")
    (settings.DMARKET_FILES_DIR / version.blob).unlink()

    response = client_for(alice).get("/api/files/gone.bin")

    assert response.status_code == 503
    assert response.json() == {"detail": "The file store could not read the file: it has no "
                                         "copy of it left."}
