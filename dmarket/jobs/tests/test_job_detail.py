"""GET /api/jobs/{id}/: the owner and operators see a job; anyone else is told it is not there."""

from django.utils import timezone

from dmarket.conftest import client_for
from dmarket.jobs.models import Job

from .util import ANONYMOUS, NO_JOB, iso, job_json, submit, submitted


def test_owner_gets_the_exact_job(alice, entry_file):
    created = submit(alice, entry_file, name="mine", app_params="a 'b c'").json()

    response = client_for(alice).get(f"/api/jobs/{created['id']}/")

    assert response.status_code == 200
    assert response.json() == created
    assert response.json() == job_json(created["id"], "alice", entry_file,
                                       created["created_at"], name="mine",
                                       app_params=["a", "b c"])


def test_detail_shows_what_the_launcher_wrote(alice, entry_file):
    job = submitted(alice, entry_file)
    started = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, started_at=started,
                                         spark_app_id="app-20240101000000-0001")

    response = client_for(alice).get(f"/api/jobs/{job.pk}/")

    assert response.status_code == 200
    assert response.json() == job_json(job.pk, "alice", entry_file, iso(job.created_at),
                                       status="RUNNING", started_at=iso(started),
                                       spark_app_id="app-20240101000000-0001")


def test_another_users_job_is_404(alice, bob, entry_file):
    job = submitted(alice, entry_file)

    response = client_for(bob).get(f"/api/jobs/{job.pk}/")

    assert response.status_code == 404
    assert response.json() == NO_JOB


def test_staff_gets_any_job(alice, staff, entry_file):
    created = submit(alice, entry_file).json()

    response = client_for(staff).get(f"/api/jobs/{created['id']}/")

    assert response.status_code == 200
    assert response.json() == created


def test_anonymous_is_401(alice, entry_file):
    job = submitted(alice, entry_file)

    response = client_for().get(f"/api/jobs/{job.pk}/")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS


def test_nonexistent_job_is_404(alice, staff):
    for user in (alice, staff):
        response = client_for(user).get("/api/jobs/999999/")
        assert response.status_code == 404
        assert response.json() == NO_JOB


def test_id_beyond_the_database_range_is_404(alice):
    response = client_for(alice).get("/api/jobs/99999999999999999999/")

    assert response.status_code == 404
    assert response.json() == NO_JOB


def test_non_numeric_id_is_a_json_404(alice):
    response = client_for(alice).get("/api/jobs/abc/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such page: /api/jobs/abc/"}


def test_detail_is_read_only(alice, entry_file):
    job = submitted(alice, entry_file)

    response = client_for(alice).delete(f"/api/jobs/{job.pk}/")

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert Job.objects.filter(pk=job.pk).exists()
