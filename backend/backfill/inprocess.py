"""The in-process executor for the embedded default (SQLite, no broker).

The process that drives a run holds the run's lease (renewed once a third of it
has passed, not after every batch: it is a write of its own), so that two
`run_migrations.py --batched` started at once do not both drive it: the second one waits and follows until the run is finished, or takes
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


class RunLease:
    """This process's claim to drive a run: taken, renewed when a third of it has
    passed, released at the end."""

    def __init__(self, service: BackfillService, run_id: int):
        self.service, self.run_id = service, run_id
        self.owner = new_claim_token()
        self._renew_at: datetime | None = None

    def hold(self) -> bool:
        """True while this process holds the lease (taking or renewing it when due)."""
        now = utcnow()
        if self._renew_at is not None and now < self._renew_at:
            return True
        seconds = self.service.settings.lease_seconds
        with self.service.engine.begin() as connection:
            taken = connection.execute(
                sa.update(backfill_runs)
                .where(
                    backfill_runs.c.id == self.run_id,
                    sa.or_(
                        backfill_runs.c.lease_owner.is_(None),
                        backfill_runs.c.lease_owner == self.owner,
                        backfill_runs.c.lease_expires_at < now,
                    ),
                )
                .values(lease_owner=self.owner, lease_expires_at=now + timedelta(seconds=seconds), heartbeat_at=now)
            ).rowcount == 1
        self._renew_at = now + timedelta(seconds=seconds / 3) if taken else None
        return taken

    def release(self) -> None:
        self._renew_at = None
        with self.service.engine.begin() as connection:
            connection.execute(
                sa.update(backfill_runs)
                .where(backfill_runs.c.id == self.run_id, backfill_runs.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None)
            )


def run_in_process(service: BackfillService, run_id: int, *, on_progress: ProgressCallback | None = None,
                   on_wait: WaitCallback | None = None, wait: bool = True,
                   sleep: Callable[[float], None] = time.sleep, poll_interval: float = 0.5) -> Progress:
    """Drive the run batch by batch in this process until it is no longer running
    (or, with wait=False, until it has to wait for a window or for health)."""
    lease = RunLease(service, run_id)
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
            if not lease.hold():
                sleep(poll_interval)  # another live process drives it: follow
                continue
            ran = _run_some_batches(service, run_id, lease, sleep)
            if not ran and service.get_run(run_id)["status"] == RunStatus.RUNNING:
                sleep(poll_interval)  # its batches are held by others for now
    finally:
        lease.release()


def _run_some_batches(service: BackfillService, run_id: int, lease: RunLease, sleep) -> bool:
    """Run the batches available now; False when there was none to run."""
    pause = service.policy(run_id).pause_seconds
    batch_ids = service.advance(run_id) or service.batches_to_run(run_id)
    for batch_id in batch_ids:
        outcome = service.execute(batch_id)
        while outcome.kind in ("retry", "leased"):
            sleep(outcome.retry_in)
            lease.hold()
            outcome = service.execute(batch_id)
        if outcome.kind in ("failed", "waiting", "not_runnable", "split"):
            break  # the loop above looks at the run again
        lease.hold()
        if pause:
            sleep(pause)  # throttle: leave the database room between batches
    return bool(batch_ids)
