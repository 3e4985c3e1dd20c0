"""Celery tasks: one task per batch, the periodic recovery, and one webhook
notification per URL and status change.

The correctness of a batch does not depend on Celery: a duplicate or redelivered
message finds the batch already done in the database and changes nothing.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable

from celery.signals import worker_process_init

from backend.backfill import webhook
from backend.backfill.outcome import Step, next_step
from backend.backfill.service import BackfillService
from backend.metrics import events
from worker.app import app, config

log = logging.getLogger(__name__)
# Per process on purpose: a database connection pool must not cross a fork, so each
# worker process builds its own service (from the configuration worker.app read).
_service: BackfillService | None = None
_service_pid: int | None = None


def service() -> BackfillService:
    """One engine per worker process, created after the fork. The status changes it
    announces are notified through notify_webhook below."""
    global _service, _service_pid
    if _service is None or _service_pid != os.getpid():
        notifier = CeleryNotifier(config.notify_webhook_urls) if config.notify_webhook_urls else None
        _service = BackfillService.from_config(config, notifier=notifier)
        _service_pid = os.getpid()
    return _service


@worker_process_init.connect
def _reset_after_fork(**_kwargs) -> None:
    global _service
    _service = None


# Every countdown stays far below the broker's visibility timeout: a long ETA in
# Redis is redelivered again and again. Longer waits (windows) live in our tables.
MAX_COUNTDOWN_SECONDS = 30.0


def dispatch(batch_ids: Iterable[int], countdown: float = 0.0) -> None:
    for batch_id in batch_ids:
        run_batch.apply_async(args=[batch_id], countdown=min(countdown, MAX_COUNTDOWN_SECONDS) or None)


@app.task(bind=True, name="worker.tasks.run_batch", max_retries=None, acks_late=True)
def run_batch(self, batch_id: int) -> str:
    engine = service()
    outcome = engine.execute(batch_id, advance=True)  # logged with its ids by backend.metrics.events
    step = next_step(outcome)
    if step.kind is Step.SPLIT:
        dispatch(step.batch_ids)
        raise self.retry(countdown=0)
    if step.kind is Step.AGAIN:
        raise self.retry(countdown=min(step.delay, MAX_COUNTDOWN_SECONDS))
    if step.kind in (Step.NEXT, Step.LOOK_AT_RUN) and step.run_id is not None:
        # A success carved its successors in its own transaction; otherwise carve now
        # (which also looks at the run: nothing for a run that failed or is paused).
        next_ids = step.batch_ids
        if next_ids is None:
            next_ids = engine.advance(step.run_id)
        # Throttle: the next batches start after the backfill's pause.
        dispatch(next_ids, countdown=engine.policy(step.run_id).pause_seconds)
    # WAIT: the batch stays pending; the beat's recovery dispatches it when the run's
    # window opens or its health back-off ends. STOP: nothing to do.
    return outcome.kind


@app.task(name="worker.tasks.start_run")
def start_run(run_id: int) -> None:
    """Start (or take over) a run on the workers and dispatch its first batches."""
    service().start(run_id, executor="celery")
    dispatch(service().batches_to_run(run_id) + service().advance(run_id))


@app.task(name="worker.tasks.recover")
def recover() -> dict:
    dispatched = service().recover(dispatch)
    events.recovery_dispatched(sum(dispatched.values()))
    if any(dispatched.values()):
        log.warning("recovery re-dispatched batches: %s", dispatched)
    return {str(k): v for k, v in dispatched.items()}


# A notification's retries: after 1, 2, 4 ... seconds (capped like every countdown),
# about ten minutes in all before it is given up (logged).
NOTIFY_MAX_RETRIES = 24


def notify_backoff(retries: int) -> float:
    return min(2.0 ** retries, MAX_COUNTDOWN_SECONDS)


@app.task(bind=True, name="worker.tasks.notify_webhook", max_retries=NOTIFY_MAX_RETRIES)
def notify_webhook(self, url: str, body: dict) -> None:
    """POST one status change's notification to one URL; an error or a non-2xx answer
    is retried with back-off, apart from the batches (their own task, their own queue
    slots: a notification never holds a batch)."""
    try:
        webhook.post(url, body)
    except Exception as exc:
        if self.request.retries >= NOTIFY_MAX_RETRIES:
            log.error("backfill notification to %s given up after %d tries: %s", webhook.shown_url(url),
                      self.request.retries + 1, exc)
            return
        log.warning("backfill notification to %s failed (try %d), retried: %s", webhook.shown_url(url),
                    self.request.retries + 1, exc)
        raise self.retry(countdown=notify_backoff(self.request.retries)) from None


class CeleryNotifier:
    """backend.backfill.notify.Notifier through the workers: one task per URL."""

    def __init__(self, urls: tuple[str, ...]):
        self.urls = urls

    def send(self, message: dict) -> None:
        for url in self.urls:
            try:
                notify_webhook.apply_async(args=[url, message])
            except Exception as exc:  # the broker is away: the notification is lost, the run is not
                log.warning("backfill notification to %s not queued: %s", webhook.shown_url(url), exc)
