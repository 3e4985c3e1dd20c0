"""The status page in a real browser, against real processes: Debian's Chromium
driven by Playwright (never a downloaded browser), the app served by a werkzeug
server in a subprocess, a fresh PostgreSQL database, our own redis-server and a
real `celery -A worker worker`.

It opens /admin/backfills, gives the token, starts a slow backfill on the worker,
sees the percentage rise, clicks Pause, sees the run paused (by whom) and its row
count stop, clicks Resume and sees it complete (finish time, duration, average
rate); then checks the page at phone width. A second test shows the page to a wall
display: the read-only token remembered after one entry, or sent by a proxy, no
buttons; and a server without tokens, where the page says the API is disabled. The
screenshots are left in the test's temporary folder.

Without Chromium or Playwright the test is skipped, except in CI (CI=true), where
it fails.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
from celery import Celery

from backend.backfill.model import RunStatus
from tests.backfill_helpers import insert_rows, touch_service, touched
from tests.conftest import IN_CI
from tests.processes import ROOT, CeleryWorker, RedisServer, free_port, subprocess_env, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "browser-test-token-0123456789abcdef"
ROWS = 400  # test_touch_slow: batches of 5 rows, 0.3 s each, 2 in parallel: about 15 s of work

SERVE = """
import sys
from werkzeug.serving import make_server
from wsgi import create_app  # as gunicorn: with the Celery dispatcher (a broker is configured)

server = make_server("127.0.0.1", int(sys.argv[1]), create_app(), threaded=True)
print("serving", flush=True)
server.serve_forever()
"""


def _require_browser():
    problems = []
    if not os.access(CHROMIUM, os.X_OK):
        problems.append(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("Playwright for Python is not installed (pip install playwright)")
    if problems:
        message = "; ".join(problems)
        if IN_CI:
            pytest.fail(f"{message}; CI requires the browser test")
        pytest.skip(message)


class AppServer:
    """`create_app()` behind werkzeug's threaded server, in its own process."""

    def __init__(self, env: dict[str, str], log_path):
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AppServer":
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-c", SERVE, str(self.port)], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the app server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def redis_server(redis_available):
    server = RedisServer().start()
    yield server
    server.kill()


def _number(text: str) -> float:
    match = re.search(r"[\d.,]+", text or "")
    assert match, f"no number in {text!r}"
    return float(match.group(0).replace(",", ""))


def test_operator_pauses_and_resumes_a_running_backfill(pg_url, redis_server, tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, ROWS + 1))
    run_id = service.schedule("test_touch_slow")
    env = subprocess_env(
        DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_server.url, BACKFILL_MODULES="tests.backfills_for_tests",
        ADMIN_API_TOKEN=f"ops:{TOKEN}", BACKFILL_LEASE_SECONDS="5", BACKFILL_REDISPATCH_AFTER_SECONDS="3",
    )
    worker = CeleryWorker(env, concurrency=2, log_path=tmp_path / "worker.log").start()
    server = AppServer(env, tmp_path / "server.log").start()
    logs = lambda: (f"server: {(tmp_path / 'server.log').read_text()[-2000:]}\n"  # noqa: E731
                    f"worker: {(tmp_path / 'worker.log').read_text()[-2000:]}")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                _drive(page, expect, server.url, run_id, redis_server.url, service, tmp_path)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                print(logs())
                raise
            finally:
                browser.close()
    finally:
        server.stop()
        worker.stop()

    assert touched(service.engine) == {i: 1 for i in range(1, ROWS + 1)}, logs()
    log = [(t.to_status, t.actor) for t in service.transitions(run_id)]
    assert ("paused", "api:ops") in log and ("running", "api:ops") in log and log[-1][0] == "completed"
    service.engine.dispose()


def _drive(page, expect, base_url, run_id, broker_url, service, tmp_path):
    card = f"#run-{run_id}"
    field = lambda name: page.locator(f'{card} [data-field="{name}"]')  # noqa: E731

    page.goto(f"{base_url}/admin/backfills")
    expect(page.get_by_label("Admin API token")).to_be_visible()
    page.get_by_label("Admin API token").fill(TOKEN)
    page.get_by_label("Remember a read-only token on this device").check()  # refused: this one controls
    page.get_by_role("button", name="Connect").click()
    expect(field("status")).to_have_text("pending", timeout=10_000)
    assert page.evaluate("sessionStorage.getItem('backfills.adminToken')") == TOKEN
    assert page.evaluate("localStorage.length") == 0
    expect(page.locator("#notice")).to_contain_text("Not remembered: this token can control runs")
    assert page.locator(f"{card} progress").get_attribute("value") == "0"  # a pending run's bar does not move
    assert page.request.get(f"{base_url}/favicon.ico").status == 204

    Celery("client", broker=broker_url).send_task("worker.tasks.start_run", args=[run_id])

    # The percentage rises, read from the page while the worker runs.
    expect(field("status")).to_have_text("running", timeout=20_000)
    first = wait_for(lambda: (value := _number(field("percent").text_content() or "0")) > 0 and value,
                     timeout=20, message="a first percentage")
    second = wait_for(lambda: (value := _number(field("percent").text_content())) > first and value,
                      timeout=20, message="the percentage to rise")
    assert first < second < 100
    # The rate and the ETA show once a 5-second measuring tick has passed.
    expect(field("rate")).to_contain_text("rows/s", timeout=15_000)
    assert re.fullmatch(r"(\d{1,3}(,\d{3})*|under 1) rows?/s", field("rate").text_content()), "no decimals"
    expect(field("eta")).to_have_text(re.compile(r"\d+ (s|min)"))
    expect(field("window")).to_have_text("Open")
    progress = page.locator(f"{card} progress")
    assert float(progress.get_attribute("value")) > 0
    expect(page.get_by_label(re.compile(f"Progress of test_touch_slow \\(run {run_id}\\)"))).to_be_visible()

    # Pause: the run stops at the next batch boundary and its row count stays put.
    page.get_by_role("button", name=f"Pause test_touch_slow (run {run_id})").click()
    expect(field("status")).to_have_text("paused", timeout=10_000)
    expect(page.locator("#announcer")).to_contain_text("paused", timeout=5_000)
    expect(page.get_by_role("button", name=f"Resume test_touch_slow (run {run_id})")).to_be_visible()
    expect(page.get_by_role("button", name=f"Pause test_touch_slow (run {run_id})")).to_be_hidden()
    expect(field("control")).to_contain_text("Paused by api:ops at ")
    expect(field("batches")).not_to_contain_text("finishing", timeout=10_000)  # batches in flight finished
    expect(field("batches")).not_to_contain_text("in flight")
    rows_paused = field("rows").text_content()
    done_paused = service.get_run(run_id).rows_done
    page.screenshot(path=str(tmp_path / "status-page-paused.png"), full_page=True)
    time.sleep(3)
    assert field("rows").text_content() == rows_paused
    assert service.get_run(run_id).rows_done == done_paused < ROWS
    assert service.get_run(run_id).status == RunStatus.PAUSED

    # Resume: the worker gets the batches at once and the run completes.
    page.get_by_role("button", name=f"Resume test_touch_slow (run {run_id})").click()
    expect(field("status")).to_have_text("running", timeout=10_000)
    expect(field("status")).to_have_text("completed", timeout=60_000)
    expect(field("percent")).to_have_text("100.0%")
    assert float(progress.get_attribute("value")) == 100
    expect(field("eta")).to_have_text("Done")
    expect(field("finished")).to_contain_text(re.compile(r" · took \d+ (s|min \d+ s) · [\d,]+ rows/s on average"))
    expect(field("control")).to_be_hidden()
    expect(page.locator(f"{card} button[data-action]:visible")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)

    # A phone-size screen: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "status-page-phone.png"), full_page=True)


READ_TOKEN = "wall-display-read-token-0123456789abcdef"


def test_a_wall_display_reads_with_the_read_only_token(pg_url, tmp_path):
    """No worker needed: a paused run and a completed one are enough to look at."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    service.pause(run_id, actor="cli:alice", reason="peak traffic")
    base = dict(DATABASE_URL=pg_url, BACKFILL_MODULES="tests.backfills_for_tests")
    server = AppServer(subprocess_env(**base, ADMIN_API_TOKEN=f"ops:{TOKEN}", ADMIN_READ_TOKEN=f"wall:{READ_TOKEN}"),
                       tmp_path / "server.log").start()
    off = AppServer(subprocess_env(**base), tmp_path / "server-off.log").start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                _remembered(browser, expect, server.url, run_id, tmp_path)
                _behind_a_proxy(browser, expect, server.url, run_id)
                page = browser.new_page()
                page.goto(f"{off.url}/admin/backfills")
                expect(page.locator("#disabled")).to_contain_text("The operations API is disabled")
                expect(page.get_by_label("Admin API token")).to_be_hidden()
            finally:
                browser.close()
    finally:
        server.stop()
        off.stop()
        service.engine.dispose()
    assert service.get_run(run_id).status == RunStatus.PAUSED


def _remembered(browser, expect, base_url, run_id, tmp_path):
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/admin/backfills")
    page.get_by_label("Admin API token").fill(READ_TOKEN)
    page.get_by_label("Remember a read-only token on this device").check()
    page.get_by_role("button", name="Connect").click()
    card = page.locator(f"#run-{run_id}")
    expect(card.locator('[data-field="control"]')).to_contain_text("Paused by cli:alice at ", timeout=10_000)
    expect(card.locator('[data-field="control"]')).to_contain_text("peak traffic.")
    expect(page.locator("#access")).to_have_text("Read-only")
    expect(card.locator("button[data-action]:visible")).to_have_count(0)  # resume and cancel are not for readers
    expect(page.locator("#notice")).to_contain_text("remembered on this device")
    assert page.evaluate("localStorage.getItem('backfills.readToken')") == READ_TOKEN
    assert page.evaluate("sessionStorage.length") == 0
    page.screenshot(path=str(tmp_path / "status-page-read-only.png"), full_page=True)

    page.reload()  # a reboot of the display: no token to type again
    expect(card.locator('[data-field="status"]')).to_have_text("paused", timeout=10_000)
    expect(page.get_by_label("Admin API token")).to_be_hidden()
    page.get_by_role("button", name="Forget token").click()
    expect(page.get_by_label("Admin API token")).to_be_visible()
    assert page.evaluate("localStorage.length") == 0


def _behind_a_proxy(browser, expect, base_url, run_id):
    context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {READ_TOKEN}"})
    page = context.new_page()
    page.goto(f"{base_url}/admin/backfills")
    expect(page.locator(f'#run-{run_id} [data-field="status"]')).to_have_text("paused", timeout=10_000)
    expect(page.get_by_label("Admin API token")).to_be_hidden()
    expect(page.locator("#access")).to_have_text("Read-only")
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0  # nothing stored in the browser
    context.close()
