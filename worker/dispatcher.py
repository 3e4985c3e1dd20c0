"""The Celery dispatcher (backend.backfill.dispatcher.Dispatcher): batches and runs
handed to the workers through the broker. The entry points build it when a broker is
configured (see `celery_dispatcher`) and hand it to the backend; likewise the
notifier of the webhook notifications (worker.tasks.CeleryNotifier)."""
from __future__ import annotations

from typing import Iterable

from worker import tasks
from worker.tasks import CeleryNotifier

__all__ = ["CeleryDispatcher", "CeleryNotifier"]


class CeleryDispatcher:
    def send(self, batch_ids: Iterable[int], countdown: float = 0.0) -> None:
        tasks.dispatch(batch_ids, countdown)

    def start(self, run_id: int) -> None:
        tasks.start_run.delay(run_id)
