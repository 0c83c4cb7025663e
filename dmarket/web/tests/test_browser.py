"""The dashboard in a real headless Chromium against the live server: sign up, the pages and
their charts, an upload with progress, another user's job refused, an inference job's batch
size set. (A job submitted through the form on the real Spark cluster: test_browser_job.py.)
Screenshots of every page, at desktop and phone width, go to test-artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dmarket.conftest import client_for
from dmarket.inference.models import InferenceBatch, InferenceJob
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine, MachineStateChange

from .conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long browser password 3"


def wait_for(driver, condition, timeout=15, what="the page"):
    return WebDriverWait(driver, timeout).until(
        lambda d: condition(d), message=f"waited {timeout} s for {what}")


def find(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


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
    assert "Welcome, wendy: you have 100 credits to spend." in find(browser, "main").text
    assert find(browser, "[data-credits=available]").text == "100.000000"
    screenshot(browser, "overview")

    # Her machine, and its history as a chart.
    wendy = Machine.objects.model.user.field.related_model.objects.get(username="wendy")
    machine = Machine.objects.create(user=wendy, name="laptop", cores=4, memory_mb=8192,
                                     address="127.0.0.40", state=Machine.ONLINE)
    for state in (Machine.ONLINE, Machine.PAUSED, Machine.ONLINE):
        MachineStateChange.objects.create(machine=machine, state=state, reason="test")
    browser.get(base + "/machines/")
    assert "laptop" in find(browser, "#machines").text
    screenshot(browser, "machines")
    browser.get(base + f"/machines/{machine.pk}/")
    assert wait_for(browser, lambda d: chart_points(d, "machine-chart"),
                    what="the machine chart") == [4]  # three changes and now
    screenshot(browser, "machine")

    browser.get(base + "/credits/")
    points = wait_for(browser, lambda d: chart_points(d, "credits-chart"),
                      what="the credits chart")
    assert points == [2, 2, 2]  # the sign-up grant, and now: balance, spent, earned
    assert "grant" in find(browser, "#ledger").text
    screenshot(browser, "credits")

    # An upload, with its progress shown, then the file listed with its versions.
    local = tmp_path / "notes.txt"
    local.write_bytes(b"x" * 300_000)
    browser.get(base + "/files/")
    find(browser, "input[name=file]").send_keys(str(local))
    find(browser, "input[name=name]").send_keys("docs/notes.txt")
    find(browser, "form[data-upload-form] button[type=submit]").click()
    wait_for(browser, lambda d: "dmarket://docs/notes.txt@1 stored" in
             find(d, "[data-progress]").text, what="the upload's progress")
    wait_for(browser, lambda d: "dmarket://docs/notes.txt@1" in find(d, "#files").text,
             what="the uploaded file listed")
    find(browser, "button[data-versions]").click()
    wait_for(browser, lambda d: "version 1 · 300000 bytes" in
             find(d, "tr[data-versions-of]").text, what="the versions")
    screenshot(browser, "files")

    browser.get(base + "/jobs/new/")
    assert "credits per core-hour" in find(browser, ".quote").text
    find(browser, "input[name=cores]").clear()
    find(browser, "input[name=cores]").send_keys("3")
    hourly = find(browser, "[data-hourly]").text
    assert float(hourly) > 0
    screenshot(browser, "submit")

    for name, path in (("jobs", "/jobs/"), ("cluster", "/cluster/"), ("tokens", "/tokens/"),
                       ("inference", "/inference/")):
        browser.get(base + path)
        screenshot(browser, name)

    browser.get(base + "/api/docs/")
    wait_for(browser, lambda d: "dmarket API" in d.find_element(By.TAG_NAME, "body").text,
             what="Swagger UI")
    screenshot(browser, "api-docs", phone=False)

    # Another user's job: the not-found page, nothing of it shown.
    bob = make_user("bob")
    job = Job.objects.create(user=bob, name="bobs-secret-job", entry_file="dmarket://a.py@1")
    browser.get(base + f"/jobs/{job.pk}/")
    assert find(browser, "h1").text == "Not found"
    assert "bobs-secret-job" not in browser.page_source
    screenshot(browser, "not-found")


def test_an_inference_jobs_batch_size_is_set_and_its_rate_charted(browser, live_server):
    base = live_server.url
    sign_up(browser, base, "ivan")
    ivan = Machine.objects.model.user.field.related_model.objects.get(username="ivan")
    billing = Job.objects.create(user=ivan, name="resnet", entry_file="(inference)",
                                 status=Job.RUNNING)
    ijob = InferenceJob.objects.create(user=ivan, job=billing, model="dmarket://m.keras",
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
    assert "#%d: 4.0/s" % ijob.pk in find(browser, "[data-rates-note]").text
    screenshot(browser, "inference-rates")

    browser.get(base + f"/inference/{ijob.pk}/")
    assert find(browser, "#inference-batch").text == "8"
    browser.execute_script("window.notReloaded = true")
    field = find(browser, "input[name=batch_size]")
    field.clear()
    field.send_keys("32")
    find(browser, "form[data-batch-form] button[type=submit]").click()
    wait_for(browser, lambda d: find(d, "#inference-batch").text == "32",
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
             find(d, "form[data-batch-form] [data-errors]").text, what="the API's refusal")
    screenshot(browser, "inference-job")


def test_a_jobs_markup_in_its_spark_ui_runs_no_script(browser, live_server, history):
    """The fake history server's page carries a script, as a hostile job's description
    might: through the proxy, Chromium runs none of it."""
    base = live_server.url
    sign_up(browser, base, "mallory")
    mallory = Machine.objects.model.user.field.related_model.objects.get(username="mallory")
    job = Job.objects.create(user=mallory, name="j", entry_file="dmarket://a.py@1",
                             status=Job.SUCCEEDED, spark_app_id="app-1")
    browser.get(base + f"/jobs/{job.pk}/spark/")
    wait_for(browser, lambda d: "page /history/app-1/jobs/" in
             d.find_element(By.TAG_NAME, "body").text, what="the proxied page")
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
    assert "QUEUED" in find(browser, "#job-status").text
    find(browser, "button[data-confirm^='Cancel job']").click()
    browser.switch_to.alert.accept()
    wait_for(browser, lambda d: "CANCELLED" in find(d, "#job-status").text,
             what="the cancelled state")
    assert browser.execute_script("return window.notReloaded") is True
    assert not browser.find_elements(By.CSS_SELECTOR, "button[data-confirm^='Cancel job']")
    assert Job.objects.get(pk=job_id).status == Job.CANCELLED
