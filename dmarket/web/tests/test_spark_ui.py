"""A job's Spark UI through the dashboard, against a fake history server (`history` in
conftest.py; the real one: dmarket/cluster/tests/test_browser_job.py): the
job's own application's pages only, sandboxed, never another application's or the list."""

import pytest
from django.test import Client

from dmarket.jobs.models import Job
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def job_of(user, app_id="app-1"):
    return make_job(user=user, name="j", entry_file="dmarket://a.py@1",
                    status=Job.SUCCEEDED, spark_app_id=app_id)


def test_the_jobs_own_pages_come_sandboxed_under_its_prefix(alice, history):
    job = job_of(alice)
    client = signed_in(alice)
    prefix = f"/jobs/{job.pk}/spark/"

    first = client.get(prefix)
    assert first.status_code == 302 and first["Location"] == prefix + "history/app-1/jobs/"
    page = client.get(prefix + "history/app-1/jobs/?id=3")
    assert page.status_code == 200
    assert b"".join(page.streaming_content).startswith(
        b"<html><p>page /history/app-1/jobs/?id=3</p><script>window.pwned = 1;")
    # No script of the page may run in the dashboard's origin; Spark's cookie stays behind.
    assert page["Content-Security-Policy"].startswith("sandbox allow-same-origin")
    assert "allow-scripts" not in page["Content-Security-Policy"]
    assert "script-src 'none'" in page["Content-Security-Policy"]
    assert "Set-Cookie" not in page
    # Spark writes its links under the prefix it is told.
    assert history[-1] == ("/history/app-1/jobs/?id=3", prefix.rstrip("/"))

    moved = client.get(prefix + "history/app-1/")
    assert moved.status_code == 302 and moved["Location"] == prefix + "history/app-1/jobs/"
    assert client.get(prefix + "api/v1/applications/app-1/jobs").status_code == 200
    assert client.get(prefix + "static/spark-dag-viz.css").status_code == 200


@pytest.mark.parametrize("rest", [
    "history/app-2/jobs/", "api/v1/applications", "api/v1/applications/",
    "api/v1/applications/app-2/jobs", "api/v1/applications/app-1/../app-2/jobs",
    "history/app-1/../app-2/", "history/app-10/jobs/", "history/", "", "static/../history/",
    "api/v1/version", "history/app-1\\..\\app-2/",
    # Encoded dots: Django decodes once, and requests would decode %2e again upstream.
    "history/app-1/%2e%2e/app-2/jobs/", "history/app-1/%252e%252e/app-2/jobs/",
    "api/v1/applications/app-1/%252e%252e/%252e%252e/applications",
    "history/app-1/.%252e/app-2/", "history/app-1/..;/app-2/", "history//app-1/jobs/",
    "static/", "static/.hidden", "history/app-1/jobs;x=1/"])
def test_no_other_path_reaches_the_history_server(alice, history, rest):
    job = job_of(alice)
    response = signed_in(alice).get(f"/jobs/{job.pk}/spark/{rest}")
    assert response.status_code == (302 if rest == "" else 404), rest
    assert history == []


def test_another_users_job_and_a_job_without_application_are_404(alice, bob, history):
    job = job_of(bob)
    assert signed_in(alice).get(f"/jobs/{job.pk}/spark/history/app-1/jobs/").status_code == 404
    waiting = job_of(alice, app_id="")
    assert signed_in(alice).get(f"/jobs/{waiting.pk}/spark/").status_code == 404
    assert Client().get(f"/jobs/{job.pk}/spark/").status_code == 302  # to sign in
    assert history == []


def test_the_history_server_down_is_a_503_that_tells_no_address(alice, settings):
    settings.DMARKET_HISTORY_URL = "http://127.0.0.1:9"
    job = job_of(alice)
    response = signed_in(alice).get(f"/jobs/{job.pk}/spark/history/app-1/jobs/")
    assert response.status_code == 503
    assert response.content == b"The Spark history server does not answer; try again shortly."


def test_the_sandbox_lets_nothing_load_from_or_post_to_elsewhere(alice, history):
    job = job_of(alice)
    policy = signed_in(alice).get(f"/jobs/{job.pk}/spark/history/app-1/jobs/")[
        "Content-Security-Policy"]
    for directive in ("default-src 'self'", "form-action 'self'", "img-src 'self' data:",
                      "script-src 'none'"):
        assert directive in policy
