"""A run's progress as operators read it: rows, percent, recent rate, ETA and the
maintenance windows still needed.

The one place these are computed, over the same RATE_WINDOW: `snapshot` for the
CLI's progress display, `--batched` and `--status`; `pace` and `percent_done` for the
operations API and the status page (backend/web/backfills/view.py), which read the
recent work of many runs in one aggregate query of their own (`in_rate_window`).

The rate is measured over the batches finished in a recent wall-clock interval,
not from the batch size, so the ETA stays honest when batch sizes change.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.clock import as_utc, utcnow
from backend.backfill.estimate import WindowPlan, window_plan
from backend.backfill.runs import get_run
from backend.backfill.model import BatchStatus, RunStatus
from backend.backfill.state import backfill_batches
from backend.backfill.windows import WindowSchedule

RATE_WINDOW = timedelta(seconds=60)


def in_rate_window(as_of: datetime) -> sa.ColumnElement[bool]:
    """The batches the rate counts: those that succeeded in the RATE_WINDOW up to `as_of`."""
    batches = backfill_batches
    return sa.and_(batches.c.status == BatchStatus.SUCCEEDED, batches.c.finished_at >= as_of - RATE_WINDOW,
                   batches.c.finished_at <= as_of)


@dataclass(frozen=True)
class RecentWork:
    """What a run's batches in the rate window did: keys walked, and when the first
    of them started."""

    rows: int = 0
    first_start: datetime | None = None

    def rows_per_second(self, as_of: datetime) -> float | None:
        if not self.rows or self.first_start is None:
            return None
        # From the first counted batch's start, even before the window: all its rows
        # count, so its whole duration must (a batch longer than the window would
        # otherwise show a rate many times too high).
        elapsed = (as_of - self.first_start).total_seconds()
        return self.rows / elapsed if elapsed > 0 else None


def recent_work(connection: Connection, run_id: int, as_of: datetime) -> RecentWork:
    rows, first_start = connection.execute(
        sa.select(sa.func.sum(backfill_batches.c.rows_in_range), sa.func.min(backfill_batches.c.started_at))
        .where(backfill_batches.c.run_id == run_id, in_rate_window(as_of))
    ).one()
    return RecentWork(int(rows or 0), as_utc(first_start))


@dataclass(frozen=True)
class Pace:
    """How fast a run moves and when it should be done, as of a moment."""

    rows_per_second: float | None = None
    eta_seconds: float | None = None  # from that moment
    plan: WindowPlan | None = None  # the rest spread over the maintenance windows (None: no windows)

    @property
    def rows_per_second_shown(self) -> float | None:
        return round(self.rows_per_second, 1) if self.rows_per_second else None

    @property
    def eta_seconds_shown(self) -> float | None:
        return round(self.eta_seconds, 1) if self.eta_seconds is not None else None


STILL = Pace()  # a run that is not moving (not running, or stalled): no rate, no ETA


def pace(rows_scanned: int, rows_total: int | None, recent: RecentWork, as_of: datetime,
         schedule: WindowSchedule | None = None) -> Pace:
    """The pace of a running run: its recent rate, the time the rest takes at that
    rate, and with its `schedule` the windows that needs."""
    rate = recent.rows_per_second(as_of)
    eta = max(rows_total - rows_scanned, 0) / rate if rate and rows_total is not None else None
    plan = window_plan(schedule, as_of, eta) if schedule is not None and eta is not None else None
    return Pace(rate, eta, plan)


@dataclass(frozen=True)
class Progress:
    run_id: int
    name: str
    status: str
    rows_done: int
    rows_scanned: int
    rows_total: int | None
    rows_total_exact: bool
    percent: float | None
    rows_per_second: float | None
    eta_seconds: float | None
    batch_size: int
    batches_done: int
    batches_failed: int
    last_error: str | None
    wait_reason: str | None = None
    next_window_at: datetime | None = None
    # Window-aware: how many more maintenance windows at the current rate, and when
    # the run should be done (None when the backfill is not limited to windows).
    windows_remaining: int | None = None
    estimated_finish_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percent_done(status: str, scanned: int, total: int | None) -> float | None:
    if status == RunStatus.COMPLETED:
        return 100.0
    if not total:
        return None
    # An estimated total can be below the truth: never claim 100 before the end.
    return round(min(scanned / total * 100.0, 99.9), 1)


def snapshot(connection: Connection, run_id: int, schedule: WindowSchedule | None = None) -> Progress:
    run = get_run(connection, run_id)
    now = utcnow()
    total = run.rows_total
    moving = pace(run.rows_scanned, total, recent_work(connection, run_id, now), now, schedule) \
        if run.status == RunStatus.RUNNING else STILL
    return Progress(
        run_id=run.id, name=run.name, status=run.status,
        rows_done=run.rows_done, rows_scanned=run.rows_scanned, rows_total=total,
        rows_total_exact=bool(run.rows_total_exact),
        percent=percent_done(run.status, run.rows_scanned, total),
        rows_per_second=moving.rows_per_second_shown,
        eta_seconds=moving.eta_seconds_shown,
        batch_size=run.batch_size, batches_done=run.batches_done, batches_failed=run.batches_failed,
        last_error=run.last_error,
        wait_reason=run.wait_reason,
        next_window_at=as_utc(run.next_window_at),
        windows_remaining=moving.plan.windows if moving.plan else None,
        estimated_finish_at=moving.plan.finish_at if moving.plan else None,
    )
