"""The in-process executor for the embedded default (SQLite, no broker).

The process that drives a run holds the run's lease (heartbeated after every
batch), so that two `run_migrations.py --batched` started at once do not both
drive it: the second one waits and follows until the run is finished, or takes
over when the first one died and its lease expired. Outside its maintenance
windows the run waits (status `waiting`); this executor sleeps until the next
opening, or with `wait=False` returns and leaves the run waiting.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from backend.backfill.clock import as_utc, utcnow
from backend.backfill.progress import Progress
from backend.backfill.runner import new_claim_token
from backend.backfill.service import BackfillService
from backend.backfill.state import RunStatus, backfill_runs

ProgressCallback = Callable[[Progress], None]
WaitCallback = Callable[[Progress, datetime], None]
# Wake at least this often while waiting, to notice a pause, cancel or config change.
MAX_SLEEP_SECONDS = 60.0


def _take_lease(service: BackfillService, run_id: int, owner: str) -> bool:
    now = utcnow()
    with service.engine.begin() as connection:
        return connection.execute(
            sa.update(backfill_runs)
            .where(
                backfill_runs.c.id == run_id,
                sa.or_(
                    backfill_runs.c.lease_owner.is_(None),
                    backfill_runs.c.lease_owner == owner,
                    backfill_runs.c.lease_expires_at < now,
                ),
            )
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=service.settings.lease_seconds),
                    heartbeat_at=now)
        ).rowcount == 1


def _release_lease(service: BackfillService, run_id: int, owner: str) -> None:
    with service.engine.begin() as connection:
        connection.execute(
            sa.update(backfill_runs)
            .where(backfill_runs.c.id == run_id, backfill_runs.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


def run_in_process(service: BackfillService, run_id: int, *, on_progress: ProgressCallback | None = None,
                   on_wait: WaitCallback | None = None, wait: bool = True,
                   sleep: Callable[[float], None] = time.sleep, poll_interval: float = 0.5) -> Progress:
    """Drive the run batch by batch in this process until it is no longer running
    (or, with wait=False, until it has to wait for a window or for health)."""
    owner = new_claim_token()
    service.start(run_id, executor="inprocess")
    announced: datetime | None = None
    try:
        while True:
            progress = service.snapshot(run_id)
            if on_progress:
                on_progress(progress)
            if progress.status == RunStatus.WAITING:
                until = as_utc(service.get_run(run_id)["next_window_at"]) or utcnow()
                if not wait:
                    return progress
                if on_wait and until != announced:
                    on_wait(progress, until)
                    announced = until
                sleep(min(max((until - utcnow()).total_seconds(), 0.0), MAX_SLEEP_SECONDS))
                service.wake_due(run_id=run_id)
                continue
            if progress.status != RunStatus.RUNNING:
                return progress
            if not _take_lease(service, run_id, owner):
                sleep(poll_interval)  # another live process drives it: follow
                continue
            if not _run_some_batches(service, run_id, owner, sleep):
                sleep(poll_interval)  # its batches are held by others for now
    finally:
        _release_lease(service, run_id, owner)


def _run_some_batches(service: BackfillService, run_id: int, owner: str, sleep) -> bool:
    """Run the batches available now; False when there was none to run."""
    pause = service.policy(run_id).pause_seconds
    batch_ids = service.advance(run_id) or service.batches_to_run(run_id)
    for batch_id in batch_ids:
        outcome = service.execute(batch_id)
        while outcome.kind in ("retry", "leased"):
            sleep(outcome.retry_in)
            _take_lease(service, run_id, owner)
            outcome = service.execute(batch_id)
        if outcome.kind in ("failed", "waiting", "not_runnable", "split"):
            break  # the loop above looks at the run again
        _take_lease(service, run_id, owner)  # heartbeat
        if pause:
            sleep(pause)  # throttle: leave the database room between batches
    return bool(batch_ids)
