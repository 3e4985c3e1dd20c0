"""Celery tasks: one task per batch, and the periodic recovery.

The correctness of a batch does not depend on Celery: a duplicate or redelivered
message finds the batch already done in the database and changes nothing.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable

from celery.signals import worker_process_init

from backend.backfill.service import BackfillService
from backend.metrics import events
from worker.app import app, config

log = logging.getLogger(__name__)
# Per process on purpose: a database connection pool must not cross a fork, so each
# worker process builds its own service (from the configuration worker.app read).
_service: BackfillService | None = None
_service_pid: int | None = None


def service() -> BackfillService:
    """One engine per worker process, created after the fork."""
    global _service, _service_pid
    if _service is None or _service_pid != os.getpid():
        _service = BackfillService.from_config(config)
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
    if outcome.kind == "split":
        dispatch(outcome.new_batch_ids)
        raise self.retry(countdown=0)
    if outcome.kind in ("retry", "leased"):
        raise self.retry(countdown=min(outcome.retry_in, MAX_COUNTDOWN_SECONDS))
    if outcome.run_id is not None and outcome.kind in ("succeeded", "done", "failed"):
        # A success carved its successors in its own transaction; otherwise carve now.
        next_ids = outcome.next_batch_ids
        if next_ids is None:
            next_ids = engine.advance(outcome.run_id)
        # Throttle: the next batches start after the backfill's pause.
        dispatch(next_ids, countdown=engine.policy(outcome.run_id).pause_seconds)
    # "waiting": the batch stays pending; the beat's recovery dispatches it when the
    # run's window opens or its health back-off ends.
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
