"""The operators' admin shows who stores what, read only: files change only through the
API's rules (quota, atomic uploads, no deleting what an unfinished job uses)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dmarket.files.models import FileVersion
from dmarket.jobs.tests.util import submitted

from .util import uploaded


@pytest.fixture
def admin_client(db):
    root = get_user_model().objects.create_superuser("root", "r@example.org", "a long pw 1")
    client = Client()
    client.force_login(root)
    return client


def test_versions_are_listed_with_owner_and_size(admin_client, alice, bob):
    uploaded(alice, "mnist/train.py", b"print(1)")
    uploaded(bob, "data.zip", b"PK", public="true")

    response = admin_client.get("/admin/files/fileversion/")

    assert response.status_code == 200
    text = response.content.decode()
    assert "mnist/train.py" in text and "data.zip" in text
    assert ">alice<" in text and ">bob<" in text


def test_versions_cannot_be_added_changed_or_deleted_there(admin_client, alice):
    version = uploaded(alice, "a.py", b"1")

    assert admin_client.get("/admin/files/fileversion/add/").status_code == 403
    assert admin_client.post(f"/admin/files/fileversion/{version.pk}/delete/",
                             {"post": "yes"}).status_code == 403
    # The bulk delete action is not offered: the list comes back as it was.
    assert admin_client.post("/admin/files/fileversion/", {
        "action": "delete_selected", "_selected_action": [version.pk], "post": "yes"},
    ).status_code == 200
    assert FileVersion.objects.count() == 1


def test_job_inputs_are_listed(admin_client, alice):
    uploaded(alice, "a.py", b"1")
    job = submitted(alice, "dmarket://a.py")

    response = admin_client.get("/admin/files/jobinput/")

    assert response.status_code == 200
    assert "dmarket://a.py@1" in response.content.decode()
    assert str(job.pk) in response.content.decode()
