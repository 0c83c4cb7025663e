"""GET /api/file-versions/<name>: every version of a file, newest first (the seed's
get-versions: ?page_size=N gives the last N)."""

from dmarket.conftest import client_for

from .util import ANONYMOUS, uploaded, version_json


def test_newest_first(alice):
    versions = [uploaded(alice, "m/model.zip", bytes([n])) for n in range(3)]

    response = client_for(alice).get("/api/file-versions/m/model.zip")

    assert response.status_code == 200
    assert response.json() == {"count": 3, "next": None, "previous": None,
                               "results": [version_json(v) for v in reversed(versions)]}


def test_the_last_n(alice):
    for n in range(5):
        uploaded(alice, "model.zip", bytes([n]))

    response = client_for(alice).get("/api/file-versions/model.zip", {"page_size": 2})

    assert [r["version"] for r in response.json()["results"]] == [5, 4]
    assert response.json()["count"] == 5


def test_deleted_versions_are_gone_and_numbers_not_reused(alice):
    for n in range(3):
        uploaded(alice, "model.zip", bytes([n]))
    client_for(alice).delete("/api/files/model.zip?version=3")
    uploaded(alice, "model.zip", b"new")

    response = client_for(alice).get("/api/file-versions/model.zip")

    assert [r["version"] for r in response.json()["results"]] == [4, 2, 1]


def test_another_users_private_file_is_404(alice, bob):
    uploaded(alice, "model.zip", b"1")

    response = client_for(bob).get("/api/file-versions/model.zip", {"owner": "alice"})

    assert response.status_code == 404
    assert response.json() == {"detail": "No such file: dmarket://~alice/model.zip"}


def test_another_users_public_file(alice, bob):
    uploaded(alice, "model.zip", b"1", public="true")

    response = client_for(bob).get("/api/file-versions/model.zip", {"owner": "alice"})

    assert response.status_code == 200
    assert [r["uri"] for r in response.json()["results"]] == ["dmarket://~alice/model.zip@1"]


def test_anonymous_is_401(db):
    response = client_for().get("/api/file-versions/model.zip")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS


def test_versions_queries_do_not_grow_with_versions(alice, django_assert_num_queries):
    client = client_for(alice)
    uploaded(alice, "model.zip", b"1")
    client.get("/api/file-versions/model.zip")  # stamps the token's last use

    # The token, the file (its owner joined), whether it has a version, the page (file and
    # owner joined; no count while it is the whole list).
    with django_assert_num_queries(4):
        few = client.get("/api/file-versions/model.zip")
    for i in range(2, 7):
        uploaded(alice, "model.zip", str(i).encode())
    with django_assert_num_queries(4):
        many = client.get("/api/file-versions/model.zip")

    assert [r["version"] for r in few.json()["results"]] == [1]
    assert [r["version"] for r in many.json()["results"]] == [6, 5, 4, 3, 2, 1]
