"""A run nobody works on (issue 17): one rule for `run_migrations.py --batched`, the
operations API and the status page, so that they never disagree.

A run is stalled when it is running, batches wait to be taken (pending, or running
with an expired lease) or none is carved yet, none is held by a live claim, and no
batch was claimed or finished for a while (BACKFILL_STALL_SECONDS, STALL_SECONDS by
default: EngineSettings.stall_seconds). Its batches wait safely in the
database; the likely cause is outside it (no live worker, broker unreachable, the
`--batched` process gone), which is what the reason says.

Two ways to measure "for STALL_SECONDS": `StallWatch` follows a run by its own clock
(the CLI, polling), `stall_of` judges one reading from the database's timestamps
(the API, stateless).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.clock import as_utc, utcnow
from backend.backfill.model import BatchStatus, RunStatus
from backend.backfill.state import backfill_batches

STALL_SECONDS = 30.0


@dataclass(frozen=True)
class BatchActivity:
    """What the workers did with a run's batches, from the database."""

    last_claimed_at: Any   # latest batch started_at (None: none yet)
    last_finished_at: Any  # latest batch finished_at
    attempts: int          # every claim counts one, even a claim that dies
    waiting: int           # pending batches, and running ones whose lease expired
    held: int              # running batches whose claim is alive (lease not expired)
    batches: int = 1       # every batch of the run (0: not started by a worker yet)


@dataclass(frozen=True)
class Stall:
    since: datetime  # the last sign of work: a batch claimed or finished, or the run's last change
    seconds: float   # how long ago that was
    waiting: int     # batches waiting to be taken
    reason: str


def idle(status: str, activity: BatchActivity) -> bool:
    """Running, with work to take (or none carved yet), and nobody holding any."""
    return status == RunStatus.RUNNING and not activity.held and bool(activity.waiting or not activity.batches)


def stall_reason(seconds: float, waiting: int, executor: str | None = "celery") -> str:
    pending = (f"although {waiting} batch{'es are' if waiting != 1 else ' is'} pending" if waiting
               else "(none carved yet)")
    cause = ("is `run_migrations.py --batched` still running?" if executor == "inprocess"
             else "is a worker (`celery -A worker worker`) running, and the broker reachable?")
    return f"no worker has taken a batch in {seconds:.0f} s {pending}: {cause}"


def stall_of(status: str, activity: BatchActivity, last_change: datetime | None, now: datetime, *,
             executor: str | None = "celery", seconds: float = STALL_SECONDS) -> Stall | None:
    """One reading: stalled when idle and the last batch claimed or finished (or, if
    later, `last_change`: the run's start, resume or last update) is `seconds` old."""
    if not idle(status, activity):
        return None
    marks = [as_utc(m) for m in (activity.last_claimed_at, activity.last_finished_at, last_change) if m]
    if not marks:
        return None
    since = max(marks)
    quiet = (as_utc(now) - since).total_seconds()
    if quiet < seconds:
        return None
    return Stall(since, quiet, activity.waiting, stall_reason(quiet, activity.waiting, executor))


def batch_activity(connection: Connection, run_id: int, now: datetime | None = None) -> BatchActivity:
    b = backfill_batches
    now = as_utc(now or utcnow())
    rows = connection.execute(
        sa.select(b.c.status, b.c.lease_expires_at)
        .where(b.c.run_id == run_id, b.c.status.in_([BatchStatus.PENDING, BatchStatus.RUNNING]))
    ).all()
    last_claimed, last_finished, attempts, batches = connection.execute(
        sa.select(sa.func.max(b.c.started_at), sa.func.max(b.c.finished_at),
                  sa.func.coalesce(sa.func.sum(b.c.attempts), 0), sa.func.count()).where(b.c.run_id == run_id)
    ).one()
    held = sum(1 for row in rows if row.status == BatchStatus.RUNNING and row.lease_expires_at is not None
               and as_utc(row.lease_expires_at) > now)
    return BatchActivity(last_claimed, last_finished, int(attempts), len(rows) - held, held, int(batches))


class StallWatch:
    """Follows one run and notices when it becomes stalled (by this process's clock,
    from when it first saw the run idle with the same activity) and when it moves
    again: each said once."""

    def __init__(self, seconds: float = STALL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._last: tuple | None = None
        self._last_stalled_mark: tuple | None = None
        self._since = clock()
        self.stalled = False
        self.waiting = 0

    def observe(self, status: str, activity: BatchActivity) -> str | None:
        """Returns "stalled" when the run has just been seen stalled, "moving" when
        it moves again after that, else None."""
        now = self.clock()
        mark = (activity.last_claimed_at, activity.last_finished_at, activity.attempts)
        if mark != self._last or not idle(status, activity):
            self._last, self._since = mark, now
            if self.stalled and mark != self._last_stalled_mark:
                self.stalled = False
                return "moving"
            return None
        self.waiting = activity.waiting
        if not self.stalled and now - self._since >= self.seconds:
            self.stalled = True
            self._last_stalled_mark = mark
            return "stalled"
        return None
