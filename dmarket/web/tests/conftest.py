"""A real headless browser for the dashboard's tests: Debian's chromium through its
chromedriver (install.sh installs both), driven by Selenium against pytest-django's live
server. Screenshots go to test-artifacts/screenshots/ (DMARKET_TEST_ARTIFACTS to move it)."""

import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("DMARKET_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[3] / "test-artifacts"))
DESKTOP = (1280, 900)
PHONE = (390, 844)


@pytest.fixture(scope="session")
def chromium():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = (f"{', '.join(missing)} not installed: apt-get install chromium "
                   "chromium-driver (install.sh does as root)")
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: never a silent skip there
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    # --no-sandbox: as root Chromium has no sandbox of its own. The network flags keep it from
    # calling home (this machine has no internet: each try is a refused connection).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromium[1]))
    driver.set_page_load_timeout(30)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name, phone=True):
    """The page at desktop width, and at phone width (where nothing may overflow sideways);
    saved as test artifacts."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))
    if phone:
        driver.set_window_size(*PHONE)
        # Charts follow their box's new width a frame or two later (a ResizeObserver).
        deadline = time.monotonic() + 3
        while True:
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            if overflow <= 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        driver.save_screenshot(str(folder / f"{name}-phone.png"))
        driver.set_window_size(*DESKTOP)
        assert overflow <= 0, f"{name}: {overflow} px wider than a phone's screen"


@pytest.fixture
def history(settings):
    """A fake history server (a real HTTP server) answering every path with a page that
    carries a script, and /history/app-1/ with a redirect as Spark's does; the list of
    (path, X-Forwarded-Context) it was asked."""
    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append((self.path, self.headers.get("X-Forwarded-Context")))
            if self.path == "/history/app-1/":
                self.send_response(302)
                self.send_header("Location", f"http://{self.headers['Host']}"
                                             f"{self.headers['X-Forwarded-Context']}"
                                             "/history/app-1/jobs/")
                self.end_headers()
                return
            body = (f"<html><p>page {self.path}</p><script>window.pwned = 1; "
                    "document.title = 'pwned'</script></html>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html;charset=utf-8")
            self.send_header("Set-Cookie", "JSESSIONID=spark")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Polled every 10 ms: shutdown() waits for a poll (0.5 s by default), after every test.
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    settings.DMARKET_HISTORY_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield asked
    server.shutdown()
