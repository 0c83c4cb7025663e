"""The dashboard in a real headless Chromium against the live server: sign up, the pages and
their charts, an upload with progress, another user's job refused, an inference job's batch
size set. (A job submitted through the form on the real Spark cluster: test_browser_job.py.)
Screenshots of every page, at desktop and phone width, go to test-artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dmarket.conftest import client_for
from dmarket.inference.models import InferenceBatch, InferenceJob
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine, MachineStateChange
from dmarket.inference.tests.factories import make_inference_job
from dmarket.jobs.tests.factories import make_job

from .conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long browser password 3"


def wait_for(driver, condition, timeout=15, what="the page"):
    # A live part may be swapped between finding an element and reading it: try again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: condition(d), message=f"waited {timeout} s for {what}")


def find(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


def text_of(driver, selector):
    """The element's visible text, read in one step in the page: a live part swapped in
    meanwhile cannot leave the test holding a stale element."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null",
        selector)


def sign_up(driver, base, username):
    driver.get(base + "/")
    assert driver.current_url == base + "/signin/?next=/"
    driver.find_element(By.LINK_TEXT, "Sign up").click()
    find(driver, "input[name=username]").send_keys(username)
    find(driver, "input[name=password]").send_keys(PASSWORD)
    screenshot(driver, "signup")
    find(driver, "form button[type=submit]").click()
    wait_for(driver, lambda d: d.current_url == base + "/", what="the overview")


def chart_points(driver, canvas_id):
    """The data points of each dataset of the Chart.js chart drawn on that canvas."""
    return driver.execute_script(
        "const c = Chart.getChart(document.getElementById(arguments[0]));"
        "return c ? c.data.datasets.map(d => d.data.length) : null;", canvas_id)


def test_a_new_user_signs_up_and_sees_every_page(browser, live_server, make_user, tmp_path):
    base = live_server.url
    sign_up(browser, base, "wendy")
    assert "Welcome, wendy: you have 100 credits to spend." in text_of(browser, "main")
    assert text_of(browser, "[data-credits=available]") == "100.000000"
    screenshot(browser, "overview")

    # Her machine, and its history as a chart.
    wendy = Machine.objects.model.user.field.related_model.objects.get(username="wendy")
    machine = Machine.objects.create(user=wendy, name="laptop", cores=4, memory_mb=8192,
                                     address="127.0.0.40", state=Machine.ONLINE)
    for state in (Machine.ONLINE, Machine.PAUSED, Machine.ONLINE):
        MachineStateChange.objects.create(machine=machine, state=state, reason="test")
    browser.get(base + "/machines/")
    assert "laptop" in text_of(browser, "#machines")
    screenshot(browser, "machines")
    browser.get(base + f"/machines/{machine.pk}/")
    assert wait_for(browser, lambda d: chart_points(d, "machine-chart"),
                    what="the machine chart") == [4]  # three changes and now
    screenshot(browser, "machine")

    browser.get(base + "/credits/")
    points = wait_for(browser, lambda d: chart_points(d, "credits-chart"),
                      what="the credits chart")
    assert points == [2, 2, 2]  # the sign-up grant, and now: balance, spent, earned
    assert "grant" in text_of(browser, "#ledger")
    screenshot(browser, "credits")

    # An upload, with its progress shown, then the file listed with its versions.
    local = tmp_path / "notes.txt"
    local.write_bytes(b"x" * 300_000)
    browser.get(base + "/files/")
    find(browser, "input[name=file]").send_keys(str(local))
    find(browser, "input[name=name]").send_keys("docs/notes.txt")
    find(browser, "form[data-upload-form] button[type=submit]").click()
    wait_for(browser, lambda d: "dmarket://docs/notes.txt@1 stored" in
             text_of(d, "[data-progress]"), what="the upload's progress")
    wait_for(browser, lambda d: "dmarket://docs/notes.txt@1" in text_of(d, "#files"),
             what="the uploaded file listed")
    find(browser, "button[data-versions]").click()
    wait_for(browser, lambda d: "version 1 · 300000 bytes" in
             text_of(d, "tr[data-versions-of]"), what="the versions")
    screenshot(browser, "files")

    browser.get(base + "/jobs/new/")
    assert "credits per core-hour" in text_of(browser, ".quote")
    find(browser, "input[name=cores]").clear()
    find(browser, "input[name=cores]").send_keys("3")
    hourly = text_of(browser, "[data-hourly]")
    assert float(hourly) > 0
    screenshot(browser, "submit")

    for name, path in (("jobs", "/jobs/"), ("cluster", "/cluster/"), ("tokens", "/tokens/"),
                       ("inference", "/inference/")):
        browser.get(base + path)
        screenshot(browser, name)

    browser.get(base + "/api/docs/")
    wait_for(browser, lambda d: "dmarket API" in text_of(d, "body"),
             what="Swagger UI")
    screenshot(browser, "api-docs", phone=False)

    # Another user's job: the not-found page, nothing of it shown.
    bob = make_user("bob")
    job = make_job(user=bob, name="bobs-secret-job", entry_file="dmarket://a.py@1")
    browser.get(base + f"/jobs/{job.pk}/")
    assert text_of(browser, "h1") == "Not found"
    assert "bobs-secret-job" not in browser.page_source
    screenshot(browser, "not-found")


def test_an_inference_jobs_batch_size_is_set_and_its_rate_charted(browser, live_server):
    base = live_server.url
    sign_up(browser, base, "ivan")
    ivan = Machine.objects.model.user.field.related_model.objects.get(username="ivan")
    ijob = make_inference_job(user=ivan, name="resnet", model="dmarket://m.keras",
                              data="dmarket://rows.csv", batch_size=8,
                              status=InferenceJob.RUNNING,
                              started_at=timezone.now() - timedelta(minutes=1),
                              input_count=1000)
    # 40 queries within the last 10 s: 4 per second, until they leave the window in 7 s.
    now = timezone.now()
    for i in range(5):
        InferenceBatch.objects.create(job=ijob, first_index=8 * i, size=8, processing_ms=40,
                                      core_ms=40, started_at=now - timedelta(seconds=3),
                                      finished_at=now - timedelta(seconds=1))

    browser.get(base + "/inference/")
    wait_for(browser, lambda d: (chart_points(d, "rates-chart") or [0])[0] >= 2,
             what="two samples of the rate")
    assert "#%d: 4.0/s" % ijob.pk in text_of(browser, "[data-rates-note]")
    screenshot(browser, "inference-rates")

    browser.get(base + f"/inference/{ijob.pk}/")
    assert text_of(browser, "#inference-batch") == "8"
    browser.execute_script("window.notReloaded = true")
    field = find(browser, "input[name=batch_size]")
    field.clear()
    field.send_keys("32")
    find(browser, "form[data-batch-form] button[type=submit]").click()
    wait_for(browser, lambda d: text_of(d, "#inference-batch") == "32",
             what="the new batch size")
    assert browser.execute_script("return window.notReloaded") is True
    ijob.refresh_from_db()
    assert ijob.batch_size == 32
    # The API's rule, shown as it words it.
    field = find(browser, "input[name=batch_size]")
    browser.execute_script("arguments[0].removeAttribute('min')", field)
    field.clear()
    field.send_keys("0")
    find(browser, "form[data-batch-form] button[type=submit]").click()
    wait_for(browser, lambda d: "Ensure this value is greater than or equal to 1." in
             text_of(d, "form[data-batch-form] [data-errors]"), what="the API's refusal")
    screenshot(browser, "inference-job")


def test_a_jobs_markup_in_its_spark_ui_runs_no_script(browser, live_server, history):
    """The fake history server's page carries a script, as a hostile job's description
    might: through the proxy, Chromium runs none of it."""
    base = live_server.url
    sign_up(browser, base, "mallory")
    mallory = Machine.objects.model.user.field.related_model.objects.get(username="mallory")
    job = make_job(user=mallory, name="j", entry_file="dmarket://a.py@1",
                   status=Job.SUCCEEDED, spark_app_id="app-1")
    browser.get(base + f"/jobs/{job.pk}/spark/")
    wait_for(browser, lambda d: "page /history/app-1/jobs/" in
             text_of(d, "body"), what="the proxied page")
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.title != "pwned"


def test_a_queued_job_is_cancelled_from_its_page(browser, live_server, make_user,
                                                 entry_file):
    base = live_server.url
    user = make_user("carl")
    response = client_for(user).post("/api/jobs/", {"name": "waiting", "entry_file": entry_file,
                                                    "max_credits": "3"}, format="json")
    assert response.status_code == 201
    job_id = response.json()["id"]
    browser.get(base + f"/jobs/{job_id}/")
    assert browser.current_url == base + f"/signin/?next=/jobs/{job_id}/"
    find(browser, "input[name=username]").send_keys("carl")
    find(browser, "input[name=password]").send_keys("a long test password 1")
    find(browser, "form button[type=submit]").click()
    wait_for(browser, lambda d: d.current_url == base + f"/jobs/{job_id}/", what="the job")
    browser.execute_script("window.notReloaded = true")
    assert "QUEUED" in text_of(browser, "#job-status")
    find(browser, "button[data-confirm^='Cancel job']").click()
    browser.switch_to.alert.accept()
    wait_for(browser, lambda d: "CANCELLED" in text_of(d, "#job-status"),
             what="the cancelled state")
    assert browser.execute_script("return window.notReloaded") is True
    assert not browser.find_elements(By.CSS_SELECTOR, "button[data-confirm^='Cancel job']")
    assert Job.objects.get(pk=job_id).status == Job.CANCELLED
