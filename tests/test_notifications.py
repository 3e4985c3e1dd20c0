"""BACKFILL_NOTIFY_WEBHOOK_URL: every status change of a run POSTed as JSON, from a
thread of the process without a broker (a slow endpoint never slows the batches),
through a Celery task retried with back-off with one. A local http.server receives."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.backfill import notify
from backend.backfill.inprocess import run_in_process
from backend.backfill.model import RunStatus
from backend.backfill.registry import load_catalog
from backend.backfill.service import BackfillService
from backend.config import Config, ConfigError
from backend.db import create_db_engine
from tests.backfill_helpers import FAST_SETTINGS, create_touch_tables, insert_rows, touch_service, touched
from tests.processes import CeleryWorker, RedisServer, subprocess_env, wait_for
from tests.test_batched_cli import run_migrations


class Receiver:
    """An HTTP endpoint on a free port: records each POST (time, JSON body) and
    answers with `status_for(n)` (n = 1 the first time this body comes) after `delay`
    seconds."""

    def __init__(self, status_for=lambda n: 200, delay: float = 0.0):
        self.received: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.received.append((time.monotonic(), body))
                    count = sum(1 for _, seen in receiver.received if seen == body)
                time.sleep(delay)
                self.send_response(status_for(count))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        with self.lock:
            return [body for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def notifying_service(url: str, notifier) -> BackfillService:
    from backend.migrations.alembic_api import upgrade

    upgrade(url, "head")
    service = BackfillService(create_db_engine(url), load_catalog(["tests.backfills_for_tests"]), FAST_SETTINGS,
                              notifier=notifier)
    create_touch_tables(service.engine)
    return service


def moves(bodies):
    return [(body["transition"]["from"], body["transition"]["to"]) for body in bodies]


def test_a_runs_changes_arrive_in_order_with_the_run_and_the_transition(db_url, receiver):
    notifier = notify.BackgroundNotifier((receiver.url,))
    service = notifying_service(db_url, notifier)
    try:
        insert_rows(service.engine, range(1, 31))
        run_id = service.schedule("test_touch")
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
        assert notifier.flush(10)
    finally:
        service.engine.dispose()
    bodies = receiver.bodies()
    assert moves(bodies) == [(None, "pending"), ("pending", "running"), ("running", "completed")]
    last = bodies[-1]
    assert set(last) == {"text", "run", "transition"}
    assert last["text"] == (f"Backfill test_touch (run {run_id}) running -> completed by engine: "
                            "every batch succeeded")
    assert bodies[0]["text"] == f"Backfill test_touch (run {run_id}) scheduled (pending) by engine: scheduled"
    run = last["run"]
    assert (run["id"], run["name"], run["status"], run["rows_done"], run["batches_done"], run["percent"]) == (
        run_id, "test_touch", "completed", 30, 3, 100.0)
    assert run["finished_at"].endswith("Z") and run["last_error"] is None
    transition = last["transition"]
    assert set(transition) == {"id", "from", "to", "actor", "reason", "at"}
    assert (transition["actor"], transition["reason"]) == ("engine", "every batch succeeded")
    assert transition["at"].endswith("Z")
    ids = [body["transition"]["id"] for body in bodies]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_a_slow_or_unreachable_endpoint_does_not_slow_the_batches(sqlite_url):
    slow = Receiver(delay=5.0)
    closed = Receiver()
    closed.close()  # nothing listens there any more: connection refused
    notifier = notify.BackgroundNotifier((slow.url, closed.url), timeout=10.0)
    service = notifying_service(sqlite_url, notifier)
    try:
        insert_rows(service.engine, range(1, 101))
        run_id = service.schedule("test_touch")  # 10 batches, 3 changes to send
        started = time.monotonic()
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
        elapsed = time.monotonic() - started
        # The first POST alone takes 5 s; the run does not wait for it.
        assert elapsed < 3.0, elapsed
        assert touched(service.engine) == {i: 1 for i in range(1, 101)}
        assert not notifier.flush(0.1)  # still sending, in the background
    finally:
        service.engine.dispose()
        slow.close()


def test_a_full_queue_drops_the_message_and_says_so(caplog):
    notifier = notify.BackgroundNotifier(("http://127.0.0.1:9/",), queue_size=1)
    blocker, sending = threading.Event(), threading.Event()
    notify_post = notify.post

    def stuck(url, body, timeout):
        sending.set()
        blocker.wait(5)

    try:
        notify.post = stuck  # the thread is stuck on the first message
        notifier.send({"text": "message 0"})
        assert sending.wait(5)
        notifier.send({"text": "message 1"})  # waits in the queue (size 1)
        notifier.send({"text": "message 2"})  # no room: dropped
        assert "backfill notification dropped" in caplog.text and "message 2" in caplog.text
        assert "message 1" not in caplog.text
    finally:
        blocker.set()
        notify.post = notify_post


@pytest.mark.parametrize("value, problem", [
    ("hooks.slack.com/services/x", "'hooks.slack.com/services/x' is not an http:// or https:// URL"),
    ("ftp://example.com/x", "'ftp://example.com/x' is not an http:// or https:// URL"),
    ("https://ok.example/x, http://[::1/x", "'http://[::1/x' is not an http:// or https:// URL"),
    ("http://:80/x", "'http://:80/x' is not an http:// or https:// URL with a host"),
])
def test_a_bad_url_is_one_line_naming_the_setting(value, problem):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({"BACKFILL_NOTIFY_WEBHOOK_URL": value})
    assert str(raised.value).startswith("BACKFILL_NOTIFY_WEBHOOK_URL: ") and problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_several_urls_and_none():
    both = Config.from_env({"BACKFILL_NOTIFY_WEBHOOK_URL": " https://a.example/x , http://b.example:8080/y ,"})
    assert both.notify_webhook_urls == ("https://a.example/x", "http://b.example:8080/y")
    assert Config.from_env({}).notify_webhook_urls == ()


def test_the_cli_refuses_a_bad_url_in_one_line(sqlite_url, monkeypatch):
    result = run_migrations(sqlite_url, "--status", BACKFILL_NOTIFY_WEBHOOK_URL="not-a-url")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "BACKFILL_NOTIFY_WEBHOOK_URL: 'not-a-url'" in result.stderr


def test_the_cli_pause_is_notified_before_the_process_exits(sqlite_url, receiver):
    service = touch_service(sqlite_url)
    try:
        insert_rows(service.engine, range(1, 11))
        run_id = service.schedule("test_touch")
        service.start(run_id, executor="inprocess")
    finally:
        service.engine.dispose()
    result = run_migrations(sqlite_url, "--pause", str(run_id), "--reason", "peak",
                            BACKFILL_NOTIFY_WEBHOOK_URL=receiver.url)
    assert result.returncode == 0, result.stderr
    [body] = [b for b in receiver.bodies() if b["transition"]["to"] == "paused"]
    assert body["transition"]["reason"] == "peak" and body["transition"]["actor"].startswith("cli")


def test_the_entry_points_notifier_follows_the_configuration():
    """wiring.transition_notifier: none without a URL, this process's thread without a
    broker, the workers' task with one."""
    from wiring import transition_notifier

    assert transition_notifier(Config.from_env({})) is None
    in_process = transition_notifier(Config.from_env({"BACKFILL_NOTIFY_WEBHOOK_URL": "http://a.example/x"}))
    assert isinstance(in_process, notify.BackgroundNotifier) and in_process.urls == ("http://a.example/x",)
    workers = transition_notifier(Config.from_env({"BACKFILL_NOTIFY_WEBHOOK_URL": "http://a.example/x",
                                                   "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}))
    assert type(workers).__name__ == "CeleryNotifier" and workers.urls == ("http://a.example/x",)


# --- through the Celery workers -------------------------------------------------------------

def _tries(receiver: Receiver) -> dict[str, int]:
    """How many times each change's notification came, by the status it moved to."""
    counts: dict[str, int] = {}
    for body in receiver.bodies():
        counts[body["transition"]["to"]] = counts.get(body["transition"]["to"], 0) + 1
    return counts


@pytest.fixture
def redis_server(redis_available):
    server = RedisServer().start()
    yield server
    server.kill()


def test_a_500_is_retried_with_back_off_by_the_workers(pg_url, redis_server, tmp_path):
    from celery import Celery

    failing = Receiver(status_for=lambda n: 500 if n <= 2 else 200)
    service = touch_service(pg_url)
    worker = CeleryWorker(subprocess_env(
        DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_server.url, BACKFILL_MODULES="tests.backfills_for_tests",
        BACKFILL_LEASE_SECONDS="5", BACKFILL_NOTIFY_WEBHOOK_URL=failing.url,
    ), concurrency=2, log_path=tmp_path / "worker.log").start()
    try:
        insert_rows(service.engine, range(1, 11))  # one batch
        run_id = service.schedule("test_touch")  # claimed here, without a notifier: not sent
        Celery("client", broker=redis_server.url).send_task("worker.tasks.start_run", args=[run_id])
        wait_for(lambda: {to for to, times in _tries(failing).items() if times >= 3} == {"running", "completed"},
                 timeout=60, message="both changes delivered after two 500s each")
    finally:
        worker.stop()
        service.engine.dispose()
        failing.close()
    log = (tmp_path / "worker.log").read_text()
    assert _tries(failing) == {"running": 3, "completed": 3}, log[-3000:]  # 500, 500, then 200: no more
    for change in ("running", "completed"):
        times = [at for at, body in failing.received if body["transition"]["to"] == change]
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert gaps[0] >= 0.8 and gaps[1] >= 1.8, gaps  # back-off: 1 s, then 2 s
    assert "backfill notification to http://127.0.0.1" in log and "failed (try 1), retried" in log
    assert failing.url not in log  # the path of a webhook URL is its secret
