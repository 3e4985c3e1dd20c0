"""Estimates: how long a backfill takes and how many maintenance windows it needs.

`dry_run` measures a few sample batches in transactions that are rolled back, so
the database is left exactly as it was; `window_plan` spreads a duration over the
upcoming windows ("about 3 more windows, done around <date>").
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill import batching
from backend.backfill.clock import utcnow
from backend.backfill.definition import Backfill
from backend.backfill.keys import KeyRange
from backend.backfill.runner import without_jit
from backend.backfill.windows import Interval, WindowSchedule

PLAN_HORIZON = timedelta(days=730)
# Beyond this many windows the plan says "more than" (finish_at None): the cost of an
# estimate is bounded whatever the window's frequency.
MAX_PLANNED_WINDOWS = 1000


@dataclass(frozen=True)
class WindowPlan:
    windows: int  # windows needed, counting the one open now
    first_start: datetime
    finish_at: datetime | None  # None: more than MAX_PLANNED_WINDOWS or the horizon's windows


def window_plan(schedule: WindowSchedule, now: datetime, seconds: float) -> WindowPlan | None:
    """None when the backfill is not limited to windows. Walks the openings from now
    and stops once the work fits (never more than MAX_PLANNED_WINDOWS of them)."""
    if schedule.always_open:
        return None
    needed = timedelta(seconds=max(seconds, 0.0))
    count, first_start = 0, None
    for start, end in _open_time(schedule, now):
        count += 1
        first_start = first_start or start
        if end - start >= needed:
            return WindowPlan(count, first_start, start + needed)
        needed -= end - start
        if count >= MAX_PLANNED_WINDOWS:
            break
    return WindowPlan(count, first_start or now, None)


def _open_time(schedule: WindowSchedule, now: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The rest of the window open now, then each later opening, in order."""
    current = schedule.current(now)
    if current is not None:
        yield now, current.end
    for interval in _openings_of(schedule, now).after(now):
        if current is None or interval.start >= current.end:
            yield interval.start, interval.end


class _Openings:
    """One schedule's openings, computed once and kept: a progress snapshot every
    second asks for the same openings again, from a slightly later `now`."""

    def __init__(self, schedule: WindowSchedule, anchor: datetime):
        self.anchor = anchor
        self._source = schedule.iter_openings(anchor, anchor + PLAN_HORIZON)
        self._seen: list[Interval] = []
        self._lock = threading.Lock()

    def after(self, now: datetime) -> Iterator[Interval]:
        """The openings that begin at or after `now`: the kept ones first, then new ones."""
        with self._lock:
            index = bisect.bisect_left([i.start for i in self._seen], now)
        while True:
            with self._lock:
                if index >= len(self._seen):
                    found = next(self._source, None)
                    if found is None:
                        return
                    self._seen.append(found)
                interval = self._seen[index]
            index += 1
            yield interval


_OPENINGS: dict[WindowSchedule, _Openings] = {}
_OPENINGS_KEPT = 64


def _openings_of(schedule: WindowSchedule, now: datetime) -> _Openings:
    """The kept openings of `schedule`, anew when asked from before their anchor or a
    day after it (the list would only grow)."""
    kept = _OPENINGS.get(schedule)
    if kept is None or now < kept.anchor or now - kept.anchor > timedelta(days=1):
        if len(_OPENINGS) >= _OPENINGS_KEPT:
            _OPENINGS.clear()
        kept = _OPENINGS[schedule] = _Openings(schedule, now)
    return kept


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
    """Process up to `samples` batches, each rolled back, each starting at the next key
    the pending filter still finds: after a cancelled or partial run, the sample is
    work still to do, not ranges already done (which would cost nothing)."""
    size = batch_size or backfill.batch_size
    todo, exact = rows_to_do(connection, backfill)
    bounds = batching.key_bounds(connection, backfill)
    done_batches = done_rows = 0
    elapsed = 0.0
    cursor = None
    if connection.in_transaction():
        connection.rollback()
    for _ in range(samples if bounds and todo else 0):
        transaction = connection.begin()
        try:
            first = _next_pending_key(connection, backfill, after=cursor)
            carved = batching.next_range(connection, backfill, after=None, key_min=first,
                                         key_max=bounds.key_max, size=size) if first is not None else None
            if carved is None:
                break
            without_jit(connection)  # as the engine's batches run
            started = utcnow()
            backfill.process(connection, KeyRange(after=None, end=carved.end, start=first))
            elapsed += (utcnow() - started).total_seconds()
        finally:
            transaction.rollback()  # a rehearsal: nothing is kept
        done_batches += 1
        done_rows += carved.rows
        cursor = carved.end
    return DryRun(backfill.name, todo, exact, done_batches, done_rows, elapsed, size)


def _next_pending_key(connection: Connection, backfill: Backfill, *, after: Any) -> Any:
    """The smallest key after `after` that the pending filter finds (any key without one)."""
    key = backfill.key_column
    pending = backfill.pending_filter()
    conditions = [c for c in (pending, key > after if after is not None else None) if c is not None]
    return connection.execute(sa.select(sa.func.min(key)).where(*conditions)).scalar()
