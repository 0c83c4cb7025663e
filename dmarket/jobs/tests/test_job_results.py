"""GET /api/jobs/{id}/results/ lists the files a job wrote to its output directory, and
GET /api/jobs/{id}/results/<path> downloads one; nothing outside that directory is served."""

import os

import pytest

from dmarket.conftest import client_for

from .util import ANONYMOUS, NO_JOB, submitted

NO_FILE = {"detail": "No such result file."}
EMPTY_PAGE = {"count": 0, "next": None, "previous": None, "results": []}
# 2023-11-14T22:13:20Z
MTIME = 1_700_000_000


@pytest.fixture
def job(alice, entry_file):
    return submitted(alice, entry_file)


def write_output(job, relpath, data, mtime=MTIME):
    """Stand in for the job: write a file under its output directory."""
    path = job.output_dir / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def entry(path, size, modified_at="2023-11-14T22:13:20Z", sha256=None):
    return {"path": path, "size": size, "modified_at": modified_at, "sha256": sha256}


def download(user, job, path):
    response = client_for(user).get(f"/api/jobs/{job.pk}/results/{path}")
    if response.status_code == 200:
        # Consuming the content closes the file (the test client's wrapper does it).
        response.body = b"".join(response.streaming_content)
    return response


def results_url(job):
    return f"http://testserver/api/jobs/{job.pk}/results/"


# --- Listing ---------------------------------------------------------------------------------

def test_no_output_yet_is_an_empty_page(alice, job):
    response = client_for(alice).get(f"/api/jobs/{job.pk}/results/")

    assert response.status_code == 200
    assert response.json() == EMPTY_PAGE


def test_files_in_nested_directories_are_listed(alice, job):
    write_output(job, "z.txt", b"z" * 3)
    write_output(job, "m.json", b"{}", mtime=MTIME + 61)
    write_output(job, "a/b.csv", b"x,y\n1,2\n")
    write_output(job, "a/c/d.bin", b"")
    (job.output_dir / "empty-dir").mkdir()

    response = client_for(alice).get(f"/api/jobs/{job.pk}/results/")

    # Sorted by path, as `ls -R` users and download scripts expect to page through them.
    assert response.status_code == 200
    assert response.json() == {"count": 4, "next": None, "previous": None, "results": [
        entry("a/b.csv", 8),
        entry("a/c/d.bin", 0),
        entry("m.json", 2, "2023-11-14T22:14:21Z"),
        entry("z.txt", 3),
    ]}


def test_listing_is_paginated(alice, job):
    for name in ("1.txt", "2.txt", "3.txt"):
        write_output(job, name, b"x")
    client = client_for(alice)

    first = client.get(f"/api/jobs/{job.pk}/results/?page_size=2")
    second = client.get(first.json()["next"])

    assert first.json() == {"count": 3, "next": f"{results_url(job)}?page=2&page_size=2",
                            "previous": None,
                            "results": [entry("1.txt", 1), entry("2.txt", 1)]}
    assert second.json() == {"count": 3, "next": None,
                             "previous": f"{results_url(job)}?page_size=2",
                             "results": [entry("3.txt", 1)]}


def test_symlinks_are_not_listed(alice, job, tmp_path):
    write_output(job, "real.txt", b"real")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (job.output_dir / "file-link.txt").symlink_to(outside / "secret.txt")
    (job.output_dir / "dir-link").symlink_to(outside)

    response = client_for(alice).get(f"/api/jobs/{job.pk}/results/")

    assert response.json() == {"count": 1, "next": None, "previous": None,
                               "results": [entry("real.txt", 4)]}


def test_listing_shows_nothing_outside_the_output_directory(alice, job):
    job.log_path.parent.mkdir(parents=True)
    job.log_path.write_text("driver log\n")

    response = client_for(alice).get(f"/api/jobs/{job.pk}/results/")

    assert response.json() == EMPTY_PAGE


# --- Downloads -------------------------------------------------------------------------------

def test_download_returns_the_exact_bytes(alice, job):
    data = bytes(range(256)) * 10
    write_output(job, "model.bin", data)

    response = download(alice, job, "model.bin")

    assert response.status_code == 200
    assert response.body == data
    assert response["Content-Disposition"] == 'attachment; filename="model.bin"'
    assert response["Content-Length"] == str(len(data))


def test_download_from_a_nested_directory(alice, job):
    write_output(job, "a/c/metrics.csv", b"epoch,loss\n1,0.5\n")

    response = download(alice, job, "a/c/metrics.csv")

    assert response.status_code == 200
    assert response.body == b"epoch,loss\n1,0.5\n"
    assert response["Content-Disposition"] == 'attachment; filename="metrics.csv"'


def test_download_of_an_empty_file(alice, job):
    write_output(job, "empty.txt", b"")

    response = download(alice, job, "empty.txt")

    assert response.status_code == 200
    assert response.body == b""


def test_download_of_a_name_with_spaces_and_unicode(alice, job):
    write_output(job, "my résumé.txt", "héllo".encode())

    response = download(alice, job, "my%20r%C3%A9sum%C3%A9.txt")

    assert response.status_code == 200
    assert response.body == "héllo".encode()


def test_missing_file_is_404(alice, job):
    write_output(job, "there.txt", b"x")

    response = download(alice, job, "not-there.txt")

    assert response.status_code == 404
    assert response.json() == NO_FILE


def test_download_without_an_output_directory_is_404(alice, job):
    response = download(alice, job, "anything.txt")

    assert response.status_code == 404
    assert response.json() == NO_FILE


def test_a_directory_is_not_a_file(alice, job):
    write_output(job, "a/b.txt", b"x")

    for path in ("a", "a/", "."):
        response = download(alice, job, path)
        assert response.status_code == 404, path
        assert response.json() == NO_FILE


@pytest.mark.parametrize("path", [
    "../driver.log",
    "..%2Fdriver.log",
    "%2e%2e/driver.log",
    "a/../../driver.log",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "../../../../../../../../etc/passwd",
    "../output-sibling/x.txt",
])
def test_paths_leaving_the_output_directory_are_404(alice, job, path):
    write_output(job, "a/b.txt", b"x")
    job.log_path.write_text("driver log\n")
    sibling = job.work_dir / "output-sibling"
    sibling.mkdir()
    (sibling / "x.txt").write_text("x")

    response = download(alice, job, path)

    assert response.status_code == 404
    assert response.json() == NO_FILE


def test_symlink_to_a_file_outside_is_404(alice, job, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "link.txt").symlink_to(secret)
    (job.output_dir / "etc-link").symlink_to("/etc")

    for path in ("link.txt", "etc-link/passwd"):
        response = download(alice, job, path)
        assert response.status_code == 404, path
        assert response.json() == NO_FILE


def test_symlink_to_the_driver_log_is_404(alice, job):
    job.output_dir.mkdir(parents=True)
    job.log_path.write_text("driver log\n")
    (job.output_dir / "log.txt").symlink_to(job.log_path)

    response = download(alice, job, "log.txt")

    assert response.status_code == 404
    assert response.json() == NO_FILE


@pytest.mark.parametrize("path", ["x" * 300, ("y" * 250 + "/") * 20 + "z"])
def test_impossible_names_are_404_not_500(alice, job, path):
    write_output(job, "a/b.txt", b"x")
    client = client_for(alice)
    client.raise_request_exception = False

    response = client.get(f"/api/jobs/{job.pk}/results/{path}")

    assert response.status_code == 404
    assert response.json() == NO_FILE


def test_a_name_with_a_nul_byte_is_a_400_not_500(alice, job):
    write_output(job, "a/b.txt", b"x")
    client = client_for(alice)
    client.raise_request_exception = False

    response = client.get(f"/api/jobs/{job.pk}/results/a%00b")

    assert response.status_code == 400
    assert response.json() == {"detail": "The request's path or query string holds a NUL "
                                         "character (%00), which no parameter may hold."}


# --- Who may look ------------------------------------------------------------------------------

def test_another_users_results_are_404(bob, job):
    write_output(job, "secret.txt", b"secret")

    listing = client_for(bob).get(f"/api/jobs/{job.pk}/results/")
    file = download(bob, job, "secret.txt")

    assert (listing.status_code, listing.json()) == (404, NO_JOB)
    assert (file.status_code, file.json()) == (404, NO_JOB)


def test_staff_lists_and_downloads_any_results(staff, job):
    write_output(job, "out.txt", b"result\n")

    listing = client_for(staff).get(f"/api/jobs/{job.pk}/results/")
    file = download(staff, job, "out.txt")

    assert listing.status_code == 200
    assert listing.json() == {"count": 1, "next": None, "previous": None,
                              "results": [entry("out.txt", 7)]}
    assert (file.status_code, file.body) == (200, b"result\n")


def test_anonymous_is_401(job):
    write_output(job, "out.txt", b"result\n")

    listing = client_for().get(f"/api/jobs/{job.pk}/results/")
    file = client_for().get(f"/api/jobs/{job.pk}/results/out.txt")

    assert (listing.status_code, listing.json()) == (401, ANONYMOUS)
    assert (file.status_code, file.json()) == (401, ANONYMOUS)


def test_results_of_a_nonexistent_job_are_404(alice):
    listing = client_for(alice).get("/api/jobs/999999/results/")
    file = client_for(alice).get("/api/jobs/999999/results/out.txt")

    assert (listing.status_code, listing.json()) == (404, NO_JOB)
    assert (file.status_code, file.json()) == (404, NO_JOB)


# --- Stored results: recorded when the job has ended, then read from the record ----------------

def finished(job, status="SUCCEEDED"):
    from django.utils import timezone

    job.status, job.finished_at = status, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    return job


def test_stored_results_are_listed_with_their_sha256(alice, job):
    from dmarket.jobs.results import job_results_store

    write_output(job, "out.txt", b"result\n")
    write_output(job, "sub/model.bin", b"\x00\x01")

    assert job_results_store(finished(job)) == 2
    listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/")
    file = download(alice, job, "sub/model.bin")

    assert listing.json()["results"] == [
        entry("out.txt", 7, sha256=sha256(b"result\n")),
        entry("sub/model.bin", 2, sha256=sha256(b"\x00\x01"))]
    assert file.status_code == 200
    assert file["X-Content-SHA256"] == sha256(b"\x00\x01")


def test_results_of_an_unfinished_job_are_not_stored(job):
    from dmarket.jobs.results import job_results_store

    write_output(job, "out.txt", b"result\n")

    assert job_results_store(job) == 0
    job.refresh_from_db()
    assert job.results_stored_at is None


def test_storing_twice_records_each_file_once(alice, job):
    from dmarket.files.models import ResultFile
    from dmarket.jobs.results import job_results_store

    write_output(job, "out.txt", b"result\n")
    finished(job)
    job_results_store(job)

    assert job_results_store(job) == 0
    assert ResultFile.objects.filter(job=job).count() == 1


def test_files_written_after_the_record_are_not_results(alice, job):
    from dmarket.jobs.results import job_results_store

    write_output(job, "out.txt", b"result\n")
    job_results_store(finished(job))
    write_output(job, "late.txt", b"late\n")

    listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/")

    assert [f["path"] for f in listing.json()["results"]] == ["out.txt"]
    assert download(alice, job, "late.txt").status_code == 404


def test_links_are_not_recorded_as_results(alice, job, tmp_path):
    from dmarket.jobs.results import job_results_store

    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    write_output(job, "real.txt", b"real")
    (job.output_dir / "link.txt").symlink_to(secret)
    (job.output_dir / "dir-link").symlink_to(tmp_path)

    assert job_results_store(finished(job)) == 1
    assert download(alice, job, "link.txt").status_code == 404


def test_a_name_that_is_not_utf8_is_left_out(alice, job):
    from dmarket.jobs.results import job_results_store

    write_output(job, "ok.txt", b"ok")
    os.makedirs(job.output_dir, exist_ok=True)
    with open(os.path.join(os.fsencode(job.output_dir), b"bad-\xff.txt"), "wb") as f:
        f.write(b"x")

    assert job_results_store(finished(job)) == 1
    listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/")
    assert [f["path"] for f in listing.json()["results"]] == ["ok.txt"]


def sha256(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_pass_out_of_time_leaves_the_rest_to_the_next(alice, job):
    from dmarket.jobs.results import job_results_store

    for n in range(3):
        write_output(job, f"{n}.txt", b"x")
    finished(job)

    assert job_results_store(job, deadline=0) == 0
    job.refresh_from_db()
    assert job.results_stored_at is None
    assert job_results_store(job) == 3
    job.refresh_from_db()
    assert job.results_stored_at is not None


def test_files_a_row_cannot_hold_are_left_out_and_the_rest_recorded(alice, job, settings):
    from dmarket.jobs.results import job_results_store

    write_output(job, "ok.txt", b"ok")
    # 972 characters, 2,916 bytes: past what PostgreSQL's index on the path takes.
    long_dir = job.output_dir.joinpath(*["€" * 80] * 12)
    long_dir.mkdir(parents=True)
    (long_dir / "x.txt").write_bytes(b"x")

    assert job_results_store(finished(job)) == 1
    listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/")
    assert [f["path"] for f in listing.json()["results"]] == ["ok.txt"]


def test_a_modification_time_python_cannot_hold_is_not_a_500(alice, job):
    from dmarket.jobs.results import job_results_store

    path = write_output(job, "future.txt", b"x")
    try:
        os.utime(path, (2 ** 38, 2 ** 38))  # the year 10680
    except (OSError, OverflowError):
        pytest.skip("this file system cannot hold such a time")

    before = client_for(alice).get(f"/api/jobs/{job.pk}/results/")
    assert job_results_store(finished(job)) == 1
    after = client_for(alice).get(f"/api/jobs/{job.pk}/results/")

    assert before.status_code == after.status_code == 200
    assert [f["path"] for f in after.json()["results"]] == ["future.txt"]


def test_files_past_the_jobs_quota_are_not_results(alice, job, settings):
    from dmarket.jobs.results import job_results_store

    settings.DMARKET_JOB_MAX_FILES = 2
    for n in range(3):
        write_output(job, f"{n}.txt", b"x")

    assert job_results_store(finished(job)) == 2
    listing = client_for(alice).get(f"/api/jobs/{job.pk}/results/")
    assert [f["path"] for f in listing.json()["results"]] == ["0.txt", "1.txt"]


def test_a_loop_of_links_is_404_not_500(alice, job):
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "a").symlink_to(job.output_dir / "b")
    (job.output_dir / "b").symlink_to(job.output_dir / "a")

    response = download(alice, job, "a")

    assert (response.status_code, response.json()) == (404, NO_FILE)


def test_listing_queries_do_not_grow_with_files(alice, job, django_assert_num_queries):
    client = client_for(alice)
    write_output(job, "out0.txt", b"0")
    client.get(f"/api/jobs/{job.pk}/results/")  # stamps the token's last use

    # The token and the job (its owner joined): the files are read from its output directory.
    with django_assert_num_queries(2):
        few = client.get(f"/api/jobs/{job.pk}/results/")
    for i in range(1, 6):
        write_output(job, f"sub{i}/out{i}.txt", b"x" * i)
    with django_assert_num_queries(2):
        many = client.get(f"/api/jobs/{job.pk}/results/")

    assert few.json()["count"] == 1
    assert many.json()["count"] == 6


def test_stored_listing_queries_do_not_grow_with_files(alice, entry_file,
                                                       django_assert_num_queries):
    from dmarket.jobs.results import job_results_store

    client = client_for(alice)
    one, six = submitted(alice, entry_file), submitted(alice, entry_file)
    write_output(one, "out0.txt", b"0")
    for i in range(6):
        write_output(six, f"sub{i}/out{i}.txt", b"x" * i)
    assert job_results_store(finished(one)) == 1
    assert job_results_store(finished(six)) == 6
    client.get(f"/api/jobs/{one.pk}/results/")  # stamps the token's last use

    # The token, the job (its owner joined), its recorded result files: no count (a list).
    with django_assert_num_queries(3):
        few = client.get(f"/api/jobs/{one.pk}/results/")
    with django_assert_num_queries(3):
        many = client.get(f"/api/jobs/{six.pk}/results/")

    assert [f["sha256"] for f in few.json()["results"]] == [sha256(b"0")]
    assert [f["sha256"] for f in many.json()["results"]] == [
        sha256(b"x" * i) for i in range(6)]
