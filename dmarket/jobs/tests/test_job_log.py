"""GET /api/jobs/{id}/log/?from=N&size=M: the driver's log, whole lines at a time, followed by
passing each answer's `next` as the following `from`."""

import pytest

from dmarket.conftest import client_for
from dmarket.jobs.models import Job

from .util import ANONYMOUS, NO_JOB, submitted


@pytest.fixture
def job(alice, entry_file):
    return submitted(alice, entry_file)


def write_log(job, data, mode="wb"):
    """Stand in for the driver: write to the job's driver.log."""
    job.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log_path, mode) as f:
        f.write(data)


def set_status(job, status):
    Job.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()


def read_log(user, job, **params):
    return client_for(user).get(f"/api/jobs/{job.pk}/log/", params)


def log(lines, offset, next, ended=False, status="RUNNING"):
    return {"lines": lines, "offset": offset, "next": next, "ended": ended, "status": status}


def bad(name, message):
    return {"detail": f"{name}: {message}", "errors": {name: [message]}}


def test_no_log_yet_is_empty(alice, job):
    response = read_log(alice, job)

    assert response.status_code == 200
    assert response.json() == log([], 0, 0, status="QUEUED")


def test_no_log_yet_and_a_finished_job_has_ended(alice, job):
    set_status(job, Job.FAILED)

    assert read_log(alice, job).json() == log([], 0, 0, ended=True, status="FAILED")


def test_whole_lines_are_returned(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"one\ntwo\nthree\n")

    response = read_log(alice, job)

    assert response.status_code == 200
    assert response.json() == log(["one", "two", "three"], 0, 14)


def test_following_with_next(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"one\ntwo\nthree\n")

    first = read_log(alice, job, size=2).json()
    second = read_log(alice, job, **{"from": first["next"], "size": 2}).json()
    at_end = read_log(alice, job, **{"from": second["next"]}).json()
    write_log(job, b"four\n", mode="ab")
    more = read_log(alice, job, **{"from": at_end["next"]}).json()

    assert first == log(["one", "two"], 0, 8)
    assert second == log(["three"], 8, 14)
    assert at_end == log([], 14, 14)
    assert more == log(["four"], 14, 19)


def test_partial_last_line_waits_until_the_job_finishes(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"done\nhalf a li")

    running = read_log(alice, job).json()
    set_status(job, Job.SUCCEEDED)
    finished = read_log(alice, job, **{"from": running["next"]}).json()

    assert running == log(["done"], 0, 5)
    assert finished == log(["half a li"], 5, 14, ended=True, status="SUCCEEDED")


def test_partial_line_is_returned_once_completed(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"half a li")
    assert read_log(alice, job).json() == log([], 0, 0)

    write_log(job, b"ne\n", mode="ab")

    assert read_log(alice, job).json() == log(["half a line"], 0, 12)


def test_finished_job_ends_only_when_everything_is_read(alice, job):
    write_log(job, b"a\nb\nc\n")
    set_status(job, Job.SUCCEEDED)

    first = read_log(alice, job, size=2).json()
    rest = read_log(alice, job, **{"from": first["next"]}).json()

    assert first == log(["a", "b"], 0, 4, ended=False, status="SUCCEEDED")
    assert rest == log(["c"], 4, 6, ended=True, status="SUCCEEDED")


def test_crlf_and_carriage_returns(alice, job):
    # A progress bar redraws itself with a bare "\r": that is not the end of a line, and
    # must not hold back the lines after it while the job runs.
    set_status(job, Job.RUNNING)
    write_log(job, b"dos\r\n[stage 1]\r[stage 2]\nafter\n")

    response = read_log(alice, job)

    assert response.json() == log(["dos", "[stage 1]\r[stage 2]", "after"], 0, 31)


def test_empty_lines_are_kept(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"\n\nx\n")

    assert read_log(alice, job).json() == log(["", "", "x"], 0, 4)


def test_non_utf8_bytes_are_replaced(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"ok \xff\xfe bad\nutf-8 \xc3\xa9\n")

    response = read_log(alice, job)

    assert response.status_code == 200
    assert response.json() == log(["ok \ufffd\ufffd bad", "utf-8 \u00e9"], 0, 19)


def test_default_size_is_1000_lines(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"".join(b"%04d\n" % i for i in range(1500)))

    first = read_log(alice, job).json()
    rest = read_log(alice, job, **{"from": first["next"]}).json()

    assert first == log([f"{i:04d}" for i in range(1000)], 0, 5000)
    assert rest == log([f"{i:04d}" for i in range(1000, 1500)], 5000, 7500)


def test_largest_size_is_accepted(alice, job):
    set_status(job, Job.RUNNING)
    write_log(job, b"x\n" * 10001)

    response = read_log(alice, job, size=10000)

    assert response.json() == log(["x"] * 10000, 0, 20000)


def test_a_line_longer_than_one_read_comes_in_pieces(alice, job):
    set_status(job, Job.RUNNING)
    mib = 1024 * 1024
    write_log(job, b"a" * mib + b"b" * 10 + b"\n")

    first = read_log(alice, job).json()
    second = read_log(alice, job, **{"from": first["next"]}).json()

    assert first == log(["a" * mib], 0, mib)
    assert second == log(["b" * 10], mib, mib + 11)


@pytest.mark.parametrize("size, message", [
    ("0", "Must be at least 1 and at most 10000."),
    ("-5", "Must be at least 1 and at most 10000."),
    ("10001", "Must be at least 1 and at most 10000."),
    ("x", "'x' is not a whole number."),
    ("1.5", "'1.5' is not a whole number."),
])
def test_bad_size_is_400(alice, job, size, message):
    write_log(job, b"a\n")

    response = read_log(alice, job, size=size)

    assert response.status_code == 400
    assert response.json() == bad("size", message)


@pytest.mark.parametrize("start, message", [
    ("-1", "Must be at least 0."),
    ("x", "'x' is not a whole number."),
    ("3", "Beyond the end of the log (2 bytes)."),
    ("99999999999999999999999", "Beyond the end of the log (2 bytes)."),
])
def test_bad_from_is_400(alice, job, start, message):
    write_log(job, b"a\n")

    response = read_log(alice, job, **{"from": start})

    assert response.status_code == 400
    assert response.json() == bad("from", message)


def test_from_past_zero_without_a_log_is_400(alice, job):
    response = read_log(alice, job, **{"from": 1})

    assert response.status_code == 400
    assert response.json() == bad("from", "This job has no log yet.")


def test_another_users_log_is_404(bob, job):
    write_log(job, b"secret\n")

    response = read_log(bob, job)

    assert response.status_code == 404
    assert response.json() == NO_JOB


def test_staff_reads_any_log(staff, job):
    write_log(job, b"line\n")

    response = read_log(staff, job)

    assert response.status_code == 200
    assert response.json() == log(["line"], 0, 5, status="QUEUED")


def test_anonymous_is_401(job):
    write_log(job, b"secret\n")

    response = client_for().get(f"/api/jobs/{job.pk}/log/")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS


def test_log_of_a_nonexistent_job_is_404(alice):
    response = client_for(alice).get("/api/jobs/999999/log/")

    assert response.status_code == 404
    assert response.json() == NO_JOB
