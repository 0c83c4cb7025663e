"""PUT /api/files/<name>: each upload is a new version with its size and SHA-256; an upload
that is cut short, corrupt or over the quota leaves nothing behind."""

import socket
import threading
from urllib.parse import urlsplit

import pytest
import requests

from dmarket.conftest import client_for
from dmarket.files.models import FileVersion, StoredFile

from .util import ANONYMOUS, sha, stored_blobs, upload, uploaded, version_json

DATA = b"print('hello')\n"


def assert_nothing_stored(settings):
    assert FileVersion.objects.count() == 0
    assert stored_blobs(settings) == []


def test_first_upload_is_version_1(alice, settings):
    response = upload(alice, "train.py", DATA)

    assert response.status_code == 201
    version = FileVersion.objects.get()
    assert response.json() == version_json(version)
    assert response.json()["version"] == 1
    assert response.json()["size"] == len(DATA)
    assert response.json()["sha256"] == sha(DATA)
    assert response.json()["public"] is False
    assert version.local_path().read_bytes() == DATA
    assert stored_blobs(settings) == [version.blob]


def test_each_upload_is_a_new_version(alice):
    for n in range(1, 4):
        response = upload(alice, "mnist/data.zip", b"x" * n)
        assert response.status_code == 201
        assert (response.json()["version"], response.json()["size"]) == (n, n)

    versions = FileVersion.objects.filter(file__name="mnist/data.zip").order_by("version")
    assert [v.local_path().read_bytes() for v in versions] == [b"x", b"xx", b"xxx"]


def test_matching_sha256_is_accepted(alice):
    response = upload(alice, "a.py", DATA, sha256=sha(DATA).upper())

    assert response.status_code == 201
    assert response.json()["sha256"] == sha(DATA)


def test_hash_mismatch_is_400_and_stores_nothing(alice, settings):
    wrong = sha(b"other")

    response = upload(alice, "a.py", DATA, sha256=wrong)

    message = (f"The upload's SHA-256 is {sha(DATA)}, not {wrong} as announced; nothing was "
               "stored.")
    assert response.status_code == 400
    assert response.json() == {"detail": f"X-Content-SHA256: {message}",
                               "errors": {"X-Content-SHA256": [message]}}
    assert_nothing_stored(settings)


def test_bad_sha256_header_is_400(alice, settings):
    response = upload(alice, "a.py", DATA, sha256="abc")

    assert response.status_code == 400
    assert response.json() == {"detail": "X-Content-SHA256: Give 64 hexadecimal digits.",
                               "errors": {"X-Content-SHA256": ["Give 64 hexadecimal digits."]}}
    assert_nothing_stored(settings)


def test_empty_file_is_a_version(alice):
    response = client_for(alice).generic("PUT", "/api/files/empty.txt", b"",
                                         content_type="application/octet-stream",
                                         CONTENT_LENGTH="0")

    assert response.status_code == 201
    assert (response.json()["size"], response.json()["sha256"]) == (0, sha(b""))


def test_no_content_length_is_411(alice, settings):
    response = client_for(alice).generic("PUT", "/api/files/a.py", b"",
                                         content_type="application/octet-stream")

    assert response.status_code == 411
    assert response.json() == {"detail": "Give the file's size in Content-Length (chunked "
                                         "uploads are not accepted)."}
    assert_nothing_stored(settings)


def test_public_flag_on_upload_and_kept_by_later_uploads(alice):
    assert upload(alice, "a.py", DATA, public="true").json()["public"] is True
    assert upload(alice, "a.py", DATA).json()["public"] is True
    assert upload(alice, "a.py", DATA, public="false").json()["public"] is False


def test_bad_public_flag_is_400(alice, settings):
    response = upload(alice, "a.py", DATA, public="maybe")

    assert response.status_code == 400
    assert response.json() == {"detail": "public: Use public=true or public=false.",
                               "errors": {"public": ["Use public=true or public=false."]}}
    assert_nothing_stored(settings)


@pytest.mark.parametrize("name, message", [
    ("../etc/passwd", "'../etc/passwd': use segments of letters, digits, '.', '_' and '-' "
                      "separated by '/', each starting with a letter, digit or '_'."),
    ("a//b.py", "'a//b.py': use segments of letters, digits, '.', '_' and '-' separated by "
                "'/', each starting with a letter, digit or '_'."),
    ("a@2.py", "'a@2.py': use segments of letters, digits, '.', '_' and '-' separated by "
               "'/', each starting with a letter, digit or '_'."),
    ("jobs/1/results/x", "'jobs/1/results/x': names starting with 'jobs/' are reserved for "
                         "job results."),
    ("x" * 256, "a file name has at most 255 characters."),
])
def test_bad_name_is_400(alice, settings, name, message):
    response = upload(alice, name, DATA)

    assert response.status_code == 400
    assert response.json() == {"detail": f"name: {message}", "errors": {"name": [message]}}
    assert_nothing_stored(settings)


def test_users_have_separate_names(alice, bob):
    uploaded(alice, "a.py", b"alice's")
    response = upload(bob, "a.py", b"bob's")

    assert response.status_code == 201
    assert response.json()["version"] == 1
    assert response.json()["owner"] == "bob"


def test_quota_refuses_an_upload_that_would_pass_it(alice, settings):
    settings.DMARKET_STORAGE_QUOTA_MB = 1
    uploaded(alice, "a.bin", b"x" * 1000)

    response = upload(alice, "b.bin", b"y" * (1024 * 1024 - 999))

    quota = 1024 * 1024
    assert response.status_code == 413
    assert response.json() == {"detail": (
        f"Storing {quota - 999} more bytes would bring your files to {quota + 1} bytes, over "
        f"your quota of {quota} bytes (1 MB; you use 1000 bytes). Delete old versions with "
        "`dmarket files rm NAME@VERSION`.")}
    assert StoredFile.objects.filter(name="b.bin").count() == 0
    assert FileVersion.objects.count() == 1
    # Exactly up to the quota still fits.
    assert upload(alice, "b.bin", b"y" * (quota - 1000)).status_code == 201


def test_quota_is_per_user(alice, bob, settings):
    settings.DMARKET_STORAGE_QUOTA_MB = 1
    uploaded(alice, "a.bin", b"x" * (1024 * 1024))

    assert upload(bob, "a.bin", b"x" * 1000).status_code == 201


def test_anonymous_is_401(db, settings):
    response = client_for().generic("PUT", "/api/files/a.py", DATA,
                                    content_type="application/octet-stream")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS
    assert_nothing_stored(settings)


# --- Over a real socket (the live server) -----------------------------------------------------

def raw_put(server_url, user, name, headers, body=b"", then_close=True):
    """Send a PUT by hand: headers as given, then `body` (possibly shorter than announced)."""
    host, port = urlsplit(server_url).hostname, urlsplit(server_url).port
    sock = socket.create_connection((host, port), timeout=20)
    lines = [f"PUT /api/files/{name} HTTP/1.1", f"Host: {host}:{port}",
             f"Authorization: Token {user.token}", "Connection: close",
             *[f"{k}: {v}" for k, v in headers.items()]]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    if then_close:
        sock.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    return answer.decode(errors="replace")


@pytest.mark.django_db(transaction=True)
def test_an_upload_cut_short_leaves_no_version(live_server, make_user, settings):
    alice = make_user("alice")

    answer = raw_put(live_server.url, alice, "big.bin", {"Content-Length": "100000"},
                     body=b"z" * 40000)

    assert answer.startswith("HTTP/1.1 400")
    assert ('"The upload ended after 40000 of the 100000 bytes announced in Content-Length; '
            'nothing was stored."') in answer
    assert_nothing_stored(settings)


@pytest.mark.django_db(transaction=True)
def test_quota_is_checked_before_any_byte_is_read(live_server, make_user, settings):
    alice = make_user("alice")
    settings.DMARKET_STORAGE_QUOTA_MB = 1

    # Ten terabytes announced and none sent: the answer comes without waiting for them.
    answer = raw_put(live_server.url, alice, "huge.bin", {"Content-Length": str(10 ** 13)},
                     then_close=False)

    assert answer.startswith("HTTP/1.1 413")
    assert_nothing_stored(settings)


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_of_one_name_get_distinct_versions(live_server, make_user):
    alice = make_user("alice")
    count = 8
    answers = [None] * count
    start = threading.Barrier(count)

    def put(i):
        start.wait()
        answers[i] = requests.put(f"{live_server.url}/api/files/shared.bin",
                                  data=f"upload {i}".encode() * 10000,
                                  headers={"Authorization": f"Token {alice.token}"},
                                  timeout=60)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [201] * count
    assert sorted(a.json()["version"] for a in answers) == list(range(1, count + 1))
    # Each version holds the bytes of the upload that was given its number.
    for answer in answers:
        body = answer.json()
        version = FileVersion.objects.get(file__name="shared.bin", version=body["version"])
        assert version.sha256 == body["sha256"] == sha(version.local_path().read_bytes())
    assert len({a.json()["sha256"] for a in answers}) == count
