"""Webhook notifications of a run's status changes (BACKFILL_NOTIFY_WEBHOOK_URL).

Each change is POSTed as JSON to every configured URL: a Slack-compatible `text`,
the run (the fields of the operations API's run that need no live measurement) and
the transition (from, to, actor, reason, at). announce.py builds the message once the
change committed and hands it to a `Notifier`:

- with a broker, the workers' (worker/tasks.py: a Celery task per URL, retried with
  back-off when the endpoint fails), handed in by the entry points (wiring.py);
- without one, `BackgroundNotifier`: a thread of this process with a bounded queue,
  so that a slow or unreachable endpoint never slows or fails a batch. Its sends have
  a short timeout and are not retried; a full queue drops the message (logged).
"""
from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from typing import Any, Protocol

from backend.backfill.clock import as_utc
from backend.backfill.model import Run, Transition
from backend.backfill.progress import percent_done
from backend.backfill.webhook import SEND_TIMEOUT_SECONDS, post, shown_url

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
# At exit, how long a process waits for its queued notifications (a CLI's --pause).
EXIT_FLUSH_SECONDS = 10.0

Message = dict[str, Any]


class Notifier(Protocol):
    def send(self, message: Message) -> None:
        """Hand the message over for every URL; must neither block for long nor raise."""


def _iso(value) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


def run_fields(run: Run) -> dict[str, Any]:
    return {
        "id": run.id, "name": run.name, "status": str(run.status), "executor": run.executor,
        "scheduled_by": run.scheduled_by, "rows_done": run.rows_done, "rows_scanned": run.rows_scanned,
        "rows_total": run.rows_total, "rows_total_exact": bool(run.rows_total_exact),
        "percent": percent_done(run.status, run.rows_scanned, run.rows_total),
        "batch_size": run.batch_size, "max_parallel": run.max_parallel, "batches_done": run.batches_done,
        "batches_failed": run.batches_failed, "last_error": run.last_error, "wait_reason": run.wait_reason,
        "next_window_at": _iso(run.next_window_at), "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at), "updated_at": _iso(run.updated_at),
        "finished_at": _iso(run.finished_at),
    }


def message(run: Run, transition: Transition) -> Message:
    """The JSON body for one status change; `run` as it is when the change is announced."""
    moved = f"{transition.from_status} -> {transition.to_status}" if transition.from_status \
        else f"scheduled ({transition.to_status})"
    why = f": {transition.reason}" if transition.reason else ""
    return {
        "text": f"Backfill {run.name} (run {run.id}) {moved} by {transition.actor}{why}",
        "run": run_fields(run),
        "transition": {
            "id": transition.id, "from": transition.from_status and str(transition.from_status),
            "to": str(transition.to_status), "actor": transition.actor, "reason": transition.reason,
            "at": _iso(transition.at),
        },
    }


class BackgroundNotifier:
    """Sends from one daemon thread of this process, in the order handed over."""

    def __init__(self, urls: tuple[str, ...], *, timeout: float = SEND_TIMEOUT_SECONDS,
                 queue_size: int = QUEUE_SIZE):
        self.urls, self.timeout = urls, timeout
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._send_forever, name="backfill-notify", daemon=True)
        self._thread.start()
        atexit.register(self.flush, EXIT_FLUSH_SECONDS)

    def send(self, message: Message) -> None:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            log.warning("backfill notification dropped, %d waiting already: %s", self._queue.qsize(),
                        message.get("text"))

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queued messages to be sent; True if all were."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def _send_forever(self) -> None:
        while True:
            body = self._queue.get()
            try:
                for url in self.urls:
                    try:
                        post(url, body, self.timeout)
                    except Exception as exc:  # an endpoint's trouble is never the run's
                        log.warning("backfill notification to %s failed: %s", shown_url(url), exc)
            finally:
                self._queue.task_done()


def in_process_notifier(urls: tuple[str, ...]) -> BackgroundNotifier | None:
    """The notifier without a broker: None when no URL is configured."""
    return BackgroundNotifier(urls) if urls else None
