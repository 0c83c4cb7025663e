"""PATCH /api/files/<name> {"public": ...}: make a file public or private again."""

from dmarket.conftest import client_for
from dmarket.files.models import StoredFile

from .util import ANONYMOUS, uploaded, version_json


def patch(user, name, body):
    return client_for(user).patch(f"/api/files/{name}", body, format="json")


def test_publish_and_unpublish(alice, bob):
    uploaded(alice, "a.py", b"1")
    latest = uploaded(alice, "a.py", b"2")

    response = patch(alice, "a.py", {"public": True})

    assert response.status_code == 200
    assert response.json() == version_json(latest, public=True)
    assert client_for(bob).get("/api/files/a.py?owner=alice").status_code == 200

    assert patch(alice, "a.py", {"public": False}).json()["public"] is False
    assert client_for(bob).get("/api/files/a.py?owner=alice").status_code == 404


def test_unknown_field_is_400(alice):
    uploaded(alice, "a.py", b"1")

    response = patch(alice, "a.py", {"public": True, "colour": "red"})

    assert response.status_code == 400
    assert response.json() == {"detail": "colour: Unknown field.",
                               "errors": {"colour": ["Unknown field."]}}
    assert StoredFile.objects.get().public is False


def test_missing_public_is_400(alice):
    uploaded(alice, "a.py", b"1")

    response = patch(alice, "a.py", {})

    assert response.status_code == 400
    assert response.json() == {"detail": "public: This field is required.",
                               "errors": {"public": ["This field is required."]}}


def test_only_the_owner_may_change_it(alice, bob):
    uploaded(alice, "a.py", b"1", public="true")

    response = client_for(bob).patch("/api/files/a.py?owner=alice", {"public": False},
                                     format="json")

    # ?owner is not for changes: bob names his own (missing) a.py.
    assert response.status_code == 404
    assert response.json() == {"detail": "No such file: dmarket://a.py"}
    assert StoredFile.objects.get().public is True


def test_anonymous_is_401(db):
    response = client_for().patch("/api/files/a.py", {"public": True}, format="json")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS
