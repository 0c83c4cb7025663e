"""DELETE /api/files/<name>[?version=N]: one version or all of them, and their bytes; 409
while a queued or running job (anyone's) uses one."""

import pytest

from dmarket.conftest import client_for
from dmarket.files.models import FileVersion
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted

from .util import ANONYMOUS, stored_blobs, uploaded


@pytest.fixture
def delete(django_capture_on_commit_callbacks):
    """DELETE as the user; the bytes go once the transaction commits, which the test's
    own transaction never does, so its callbacks run here."""

    def run(user, path):
        with django_capture_on_commit_callbacks(execute=True):
            return client_for(user).delete(path)

    return run


def test_delete_one_version(delete, alice, settings):
    v1 = uploaded(alice, "a.py", b"1")
    v2 = uploaded(alice, "a.py", b"2")

    response = delete(alice, "/api/files/a.py?version=1")

    assert response.status_code == 200
    assert response.json() == {"name": "a.py", "deleted_versions": [1]}
    assert list(FileVersion.objects.values_list("version", flat=True)) == [2]
    assert stored_blobs(settings) == [v2.blob]
    assert not v1.local_path().exists()


def test_delete_every_version(delete, alice, settings):
    uploaded(alice, "a.py", b"1")
    uploaded(alice, "a.py", b"2")
    other = uploaded(alice, "b.py", b"3")

    response = delete(alice, "/api/files/a.py")

    assert response.status_code == 200
    assert response.json() == {"name": "a.py", "deleted_versions": [1, 2]}
    assert stored_blobs(settings) == [other.blob]
    assert client_for(alice).get("/api/files/a.py").status_code == 404


def test_missing_is_404(delete, alice):
    uploaded(alice, "a.py", b"1")

    assert delete(alice, "/api/files/a.py?version=5").json() == {
        "detail": "No such file: dmarket://a.py@5"}
    assert delete(alice, "/api/files/nope.py").status_code == 404


def test_another_users_file_is_404_even_when_public(delete, alice, bob):
    uploaded(alice, "a.py", b"1", public="true")

    response = delete(bob, "/api/files/a.py?owner=alice")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such file: dmarket://a.py"}
    assert FileVersion.objects.count() == 1


@pytest.mark.parametrize("status", Job.UNFINISHED)
def test_a_version_an_unfinished_job_uses_is_409(delete, alice, bob, status, settings):
    v1 = uploaded(alice, "app.py", b"print(1)", public="true")
    uploaded(alice, "app.py", b"print(2)")
    # bob's job pinned version 2, the latest when he submitted.
    job = submitted(bob, "dmarket://~alice/app.py")
    Job.objects.filter(pk=job.pk).update(status=status)

    response = delete(alice, "/api/files/app.py")

    assert response.status_code == 409
    assert response.json() == {"detail": f"dmarket://app.py@2 is in use by job {job.pk} "
                                         f"({status}); delete it once that job has finished."}
    assert FileVersion.objects.count() == 2
    # The version it does not use can go.
    assert delete(alice, "/api/files/app.py?version=1").status_code == 200
    assert not v1.local_path().exists()


def test_a_version_a_finished_job_used_can_be_deleted(delete, alice, settings):
    uploaded(alice, "app.py", b"print(1)")
    job = submitted(alice, "dmarket://app.py")
    Job.objects.filter(pk=job.pk).update(status=Job.SUCCEEDED)

    response = delete(alice, "/api/files/app.py")

    assert response.status_code == 200
    assert stored_blobs(settings) == []
    # The job keeps saying what it ran.
    assert Job.objects.get(pk=job.pk).entry_file == "dmarket://app.py@1"


def test_anonymous_is_401(db):
    response = client_for().delete("/api/files/a.py")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS
