"""GET /api/files/usage/: what a user's files take and what the quota leaves."""

from dmarket.conftest import client_for

from .util import ANONYMOUS, upload, uploaded


def test_nothing_stored(alice, settings):
    settings.DMARKET_STORAGE_QUOTA_MB = 2

    response = client_for(alice).get("/api/files/usage/")

    assert response.status_code == 200
    assert response.json() == {"used": 0, "quota": 2 * 1024 * 1024,
                               "available": 2 * 1024 * 1024, "files": 0, "versions": 0}


def test_every_version_counts_and_only_ones_own(alice, bob, settings):
    settings.DMARKET_STORAGE_QUOTA_MB = 1
    uploaded(alice, "a.bin", b"x" * 100)
    uploaded(alice, "a.bin", b"x" * 200)
    uploaded(alice, "b.bin", b"x" * 300)
    uploaded(bob, "c.bin", b"x" * 5000)

    response = client_for(alice).get("/api/files/usage/")

    assert response.json() == {"used": 600, "quota": 1048576, "available": 1048576 - 600,
                               "files": 2, "versions": 3}


def test_a_file_named_usage_is_still_a_file(alice):
    assert upload(alice, "usage", b"u").status_code == 201

    response = client_for(alice).get("/api/files/usage")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"u"


def test_anonymous_is_401(db):
    response = client_for().get("/api/files/usage/")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS
