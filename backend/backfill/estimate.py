"""Estimates: how long a backfill takes and how many maintenance windows it needs.

`dry_run` measures a few sample batches in transactions that are rolled back, so
the database is left exactly as it was; `window_plan` spreads a duration over the
upcoming windows ("about 3 more windows, done around <date>").
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill import batching
from backend.backfill.clock import utcnow
from backend.backfill.definition import Backfill
from backend.backfill.keys import KeyRange
from backend.backfill.runner import without_jit
from backend.backfill.windows import WindowSchedule

PLAN_HORIZON = timedelta(days=730)


@dataclass(frozen=True)
class WindowPlan:
    windows: int  # windows needed, counting the one open now
    first_start: datetime
    finish_at: datetime | None  # None: more than the horizon's windows


def window_plan(schedule: WindowSchedule, now: datetime, seconds: float) -> WindowPlan | None:
    """None when the backfill is not limited to windows."""
    if schedule.always_open:
        return None
    needed = timedelta(seconds=max(seconds, 0.0))
    intervals = []
    current = schedule.current(now)
    if current is not None:
        intervals.append((now, current.end))
    for interval in schedule.openings(now, now + PLAN_HORIZON):
        if current is None or interval.start >= current.end:
            intervals.append((interval.start, interval.end))
    for count, (start, end) in enumerate(intervals, start=1):
        if end - start >= needed:
            return WindowPlan(count, intervals[0][0], start + needed)
        needed -= end - start
    return WindowPlan(len(intervals), intervals[0][0] if intervals else now, None)


@dataclass(frozen=True)
class DryRun:
    name: str
    rows_to_do: int
    rows_exact: bool
    sample_batches: int
    sample_rows: int
    sample_seconds: float
    batch_size: int

    @property
    def rows_per_second(self) -> float | None:
        return self.sample_rows / self.sample_seconds if self.sample_seconds > 0 and self.sample_rows else None

    @property
    def seconds(self) -> float | None:
        rate = self.rows_per_second
        return self.rows_to_do / rate if rate else None


def rows_to_do(connection: Connection, backfill: Backfill) -> tuple[int, bool]:
    """Rows the pending filter finds: counted, or the planner's estimate on big PostgreSQL tables."""
    pending = backfill.pending_filter()
    query = sa.select(backfill.key_column).where(pending) if pending is not None else sa.select(backfill.key_column)
    if connection.dialect.name == "postgresql":
        size = batching._planner_estimate(connection, backfill.table.name)
        if size is not None and size > batching.EXACT_COUNT_LIMIT:
            compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
            plan = connection.execute(sa.text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar()
            return int(plan[0]["Plan"]["Plan Rows"]), False
    count = connection.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    return int(count), True


def dry_run(connection: Connection, backfill: Backfill, *, batch_size: int | None = None,
            samples: int = 3) -> DryRun:
    """Process up to `samples` batches from the start of the table, each rolled back."""
    size = batch_size or backfill.batch_size
    todo, exact = rows_to_do(connection, backfill)
    bounds = batching.key_bounds(connection, backfill)
    done_batches = done_rows = 0
    elapsed = 0.0
    cursor = None
    if connection.in_transaction():
        connection.rollback()
    for _ in range(samples if bounds else 0):
        transaction = connection.begin()
        try:
            carved = batching.next_range(connection, backfill, after=cursor, key_min=bounds.key_min,
                                         key_max=bounds.key_max, size=size)
            if carved is None:
                break
            without_jit(connection)  # as the engine's batches run
            started = utcnow()
            backfill.process(connection, KeyRange(after=cursor, end=carved.end, start=bounds.key_min))
            elapsed += (utcnow() - started).total_seconds()
        finally:
            transaction.rollback()  # a rehearsal: nothing is kept
        done_batches += 1
        done_rows += carved.rows
        cursor = carved.end
    return DryRun(backfill.name, todo, exact, done_batches, done_rows, elapsed, size)
