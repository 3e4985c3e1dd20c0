"""A run's progress as operators read it: rows, percent, recent rate and ETA.

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
from backend.backfill.estimate import window_plan
from backend.backfill.runs import get_run
from backend.backfill.state import BatchStatus, RunStatus, backfill_batches
from backend.backfill.windows import WindowSchedule

RATE_WINDOW = timedelta(seconds=60)


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


def recent_rate(connection: Connection, run_id: int, now: datetime) -> float | None:
    since = now - RATE_WINDOW
    rows, first_start = connection.execute(
        sa.select(sa.func.sum(backfill_batches.c.rows_in_range), sa.func.min(backfill_batches.c.started_at))
        .where(
            backfill_batches.c.run_id == run_id,
            backfill_batches.c.status == BatchStatus.SUCCEEDED,
            backfill_batches.c.finished_at >= since,
        )
    ).one()
    if not rows or first_start is None:
        return None
    # From the first counted batch's start, even before the window: all its rows
    # count, so its whole duration must (a batch longer than the window would
    # otherwise show a rate many times too high).
    elapsed = (now - as_utc(first_start)).total_seconds()
    return float(rows) / elapsed if elapsed > 0 else None


def snapshot(connection: Connection, run_id: int, schedule: WindowSchedule | None = None) -> Progress:
    run = get_run(connection, run_id)
    now = utcnow()
    rate = recent_rate(connection, run_id, now) if run["status"] == RunStatus.RUNNING else None
    total = run["rows_total"]
    eta = None
    if rate and total is not None and run["status"] == RunStatus.RUNNING:
        eta = max(total - run["rows_scanned"], 0) / rate
    plan = None
    if schedule is not None and eta is not None:
        plan = window_plan(schedule, now, eta)
    return Progress(
        run_id=run["id"], name=run["name"], status=run["status"],
        rows_done=run["rows_done"], rows_scanned=run["rows_scanned"], rows_total=total,
        rows_total_exact=bool(run["rows_total_exact"]),
        percent=percent_done(run["status"], run["rows_scanned"], total),
        rows_per_second=round(rate, 1) if rate else None,
        eta_seconds=round(eta, 1) if eta is not None else None,
        batch_size=run["batch_size"], batches_done=run["batches_done"], batches_failed=run["batches_failed"],
        last_error=run["last_error"],
        wait_reason=run["wait_reason"],
        next_window_at=as_utc(run["next_window_at"]),
        windows_remaining=plan.windows if plan else None,
        estimated_finish_at=plan.finish_at if plan else None,
    )
