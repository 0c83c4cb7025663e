"""GET /api/files/?sha256=HEX: whether the store holds these bytes already, as the latest
version of a file (what `dmarket jobs submit` asks before it uploads a local file)."""

from dmarket.conftest import client_for

from .util import sha, uploaded, version_json


def page(results):
    return {"count": len(results), "next": None, "previous": None, "results": results}


def test_the_files_whose_latest_version_has_the_bytes(alice, bob):
    a = uploaded(alice, "a/app.py", b"print(1)")
    uploaded(alice, "old.py", b"print(1)")
    uploaded(alice, "old.py", b"print(2)")  # only an older version holds them
    b = uploaded(alice, "b/app.py", b"print(1)")
    uploaded(bob, "bobs.py", b"print(1)")

    response = client_for(alice).get("/api/files/", {"sha256": sha(b"print(1)")})

    assert response.status_code == 200
    assert response.json() == page([version_json(a), version_json(b)])


def test_uppercase_hex_is_the_same_digest(alice):
    a = uploaded(alice, "app.py", b"x")

    response = client_for(alice).get("/api/files/", {"sha256": sha(b"x").upper()})

    assert response.json() == page([version_json(a)])


def test_bytes_the_store_does_not_hold(alice):
    uploaded(alice, "app.py", b"x")

    response = client_for(alice).get("/api/files/", {"sha256": sha(b"y")})

    assert response.status_code == 200
    assert response.json() == page([])


def test_with_a_pattern_and_another_users_public_files(alice, bob):
    uploaded(alice, "private.py", b"x")
    shared = uploaded(alice, "shared/x.py", b"x", public="true")
    uploaded(alice, "other/x.py", b"x", public="true")
    client = client_for(bob)

    response = client.get("/api/files/", {"sha256": sha(b"x"), "owner": "alice",
                                          "pattern": "shared/*"})

    assert response.status_code == 200
    assert response.json() == page([version_json(shared, uri="dmarket://~alice/shared/x.py@1")])


def test_a_digest_that_is_not_64_hex_digits_is_400(alice):
    for bad in ("abc", "g" * 64, sha(b"x") + "0", ""):
        response = client_for(alice).get("/api/files/", {"sha256": bad})

        assert response.status_code == 400, bad
        assert response.json() == {"detail": "sha256: Give 64 hexadecimal digits.",
                                   "errors": {"sha256": ["Give 64 hexadecimal digits."]}}
