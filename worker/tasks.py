"""Celery tasks: one task per batch, and the periodic recovery.

The correctness of a batch does not depend on Celery: a duplicate or redelivered
message finds the batch already done in the database and changes nothing.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable

from celery.signals import worker_process_init

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
