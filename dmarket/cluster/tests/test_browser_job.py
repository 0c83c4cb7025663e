"""A new user, in a browser only, on the real Spark cluster: signs up, submits a job through
the dashboard's form (its entry file uploaded from the page), follows its state and driver log
as they change without reloading the page, sees its executors, downloads a result and sees
the credits move. The test thread runs the launcher and billing iterations, as the daemons
would; the browser is Debian's headless chromium against the live server."""

import json
import time

import pytest
from selenium.webdriver.common.by import By

from dmarket.cluster.billing import billing_tick
from dmarket.cluster.launcher import launcher_tick
from dmarket.credits.models import Account
from dmarket.jobs.models import Job
from dmarket.web.tests.conftest import screenshot
from dmarket.web.tests.test_browser import chart_points, find, sign_up, text_of, wait_for

from .conftest import APPS
from .util import read_log, share_workers

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_user_submits_follows_and_fetches_a_job_in_the_browser(
        cluster, make_user, live_server, settings, browser):
    settings.DMARKET_PUBLIC_URL = live_server.url
    share_workers(cluster, make_user)
    base = live_server.url
    sign_up(browser, base, "sam")

    browser.get(base + "/jobs/new/")
    find(browser, "input[name=name]").send_keys("from-the-browser")
    find(browser, "input[name=entry_upload]").send_keys(str(APPS / "work.py"))
    find(browser, "input[name=app_params]").send_keys("--seconds 8 --tasks 4")
    for name, value in (("cores", "2"), ("executor_memory_mb", "512"), ("max_credits", "5")):
        find(browser, f"input[name={name}]").clear()
        find(browser, f"input[name={name}]").send_keys(value)
    find(browser, "form[data-job-form] button[type=submit]").click()
    wait_for(browser, lambda d: d.current_url.startswith(base + "/jobs/") and
             d.current_url.rstrip("/").split("/")[-1].isdigit(), what="the job's page")
    job = Job.objects.get(user__username="sam")
    assert browser.current_url == base + f"/jobs/{job.pk}/"
    # The form uploaded the entry file into her store, named as the client names it.
    assert job.entry_file.startswith("dmarket://job-files/") and \
        job.entry_file.endswith("/work.py@1"), job.entry_file
    assert job.app_params == ["--seconds", "8", "--tasks", "4"]
    browser.execute_script("window.notReloaded = true")

    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        launcher_tick()
        billing_tick()
        job.refresh_from_db()
        shown = (text_of(browser, "#job-status .status") or "?").split()[-1]
        if not seen or seen[-1] != shown:
            seen.append(shown)
        # Settled as the page shows it (its live part stops there), and the log followed out.
        page_done = browser.execute_script(
            "return 'ended' in document.getElementById('job-log').dataset && "
            "document.querySelector('#job-summary [data-final]') !== null")
        if job.settled_at is not None and shown == "SUCCEEDED" and page_done:
            break
        time.sleep(0.5)
    assert job.status == Job.SUCCEEDED, read_log(job)
    assert "RUNNING" in seen and seen[-1] == "SUCCEEDED", seen
    assert browser.execute_script("return window.notReloaded") is True
    log = text_of(browser, "#job-log")
    assert f"started {job.spark_app_id}" in log and "finished 4 tasks" in log
    assert text_of(browser, "[data-log-state]") == "The job ended: SUCCEEDED."
    assert text_of(browser, "#job-cost") == str(job.run.cost)

    # Its executors, from the history server, then a result downloaded.
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#executors tbody tr"))
             >= 1, timeout=30, what="the executors")
    wait_for(browser, lambda d: d.find_elements(By.LINK_TEXT, "result.json"),
             what="the results")
    screenshot(browser, "job")
    browser.find_element(By.LINK_TEXT, "result.json").click()
    downloaded = browser.downloads / "result.json"
    wait_for(browser, lambda d: downloaded.exists(), what="the download")
    assert json.loads(downloaded.read_text())["app_id"] == job.spark_app_id

    # Its Spark UI, from the history server, for its own application only.
    prefix = f"/jobs/{job.pk}/spark/"
    browser.get(base + prefix)
    assert browser.current_url == base + prefix + f"history/{job.spark_app_id}/jobs/"
    wait_for(browser, lambda d: "dmarket test app" in text_of(d, "body"),
             timeout=30, what="the Spark UI")
    links = browser.execute_script(
        "return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"
        ".filter(h => h.startsWith('/'))")
    assert links and all(h.startswith(prefix) for h in links), links
    screenshot(browser, "spark-ui", phone=False)
    browser.get(base + prefix + "api/v1/applications")
    assert "Not found" in text_of(browser, "h1")

    # Her credits moved by exactly the job's cost.
    account = Account.objects.get(user__username="sam")
    assert job.run.cost > 0 and account.available == 100 - job.run.cost
    browser.get(base + "/")
    assert text_of(browser, "[data-credits=available]") == str(account.available)
    browser.get(base + "/credits/")
    assert wait_for(browser, lambda d: chart_points(d, "credits-chart"),
                    what="the credits chart")[0] >= 3  # grant, hold, charge... and now
    assert "charge" in text_of(browser, "#ledger")
    screenshot(browser, "credits-after-a-job")
