"""Key bounds and the next batch's range, found through the key's index (keyset).

No OFFSET: each range is "the next `size` keys after the cursor", which the index
answers by reading exactly those entries, however far into the table we are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.definition import Backfill

# Above this many rows PostgreSQL's planner estimate replaces an exact count(*).
EXACT_COUNT_LIMIT = 200_000


@dataclass(frozen=True)
class Bounds:
    key_min: Any
    key_max: Any
    rows_total: int
    exact: bool


@dataclass(frozen=True)
class CarvedRange:
    end: Any
    rows: int


def key_bounds(connection: Connection, backfill: Backfill) -> Bounds | None:
    """The keys the run will cover, fixed when it starts; None for an empty table."""
    key = backfill.key_column
    # ORDER BY ... LIMIT 1 rather than min()/max(): answered from the index for
    # every key type (PostgreSQL has no min(uuid)).
    key_min = connection.execute(sa.select(key).order_by(key).limit(1)).scalar()
    key_max = connection.execute(sa.select(key).order_by(key.desc()).limit(1)).scalar()
    if key_min is None:
        return None
    estimate = _planner_estimate(connection, backfill.table.name)
    if estimate is not None and estimate > EXACT_COUNT_LIMIT:
        return Bounds(key_min, key_max, estimate, exact=False)
    count = connection.execute(sa.select(sa.func.count()).select_from(backfill.table)).scalar_one()
    return Bounds(key_min, key_max, int(count), exact=True)


def _planner_estimate(connection: Connection, table_name: str) -> int | None:
    if connection.dialect.name != "postgresql":
        return None
    value = connection.execute(
        sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)"), {"name": table_name}
    ).scalar()
    return int(value) if value is not None and value >= 0 else None


def next_range(connection: Connection, backfill: Backfill, *, after: Any, key_min: Any, key_max: Any,
               size: int) -> CarvedRange | None:
    """The next at most `size` keys after `after` (from `key_min` when None), up to `key_max`.

    Usually one index scan that stops at the `size`-th key; only the last range of
    the run, shorter than `size`, needs the count of what is left."""
    key = backfill.key_column
    lower = key > after if after is not None else key >= key_min
    ahead = sa.select(key.label("k")).where(lower, key <= key_max).order_by(key)
    end = connection.execute(ahead.offset(size - 1).limit(1)).scalar()
    if end is not None:
        return CarvedRange(end=end, rows=size)
    rest = ahead.subquery()
    last = connection.execute(
        sa.select(rest.c.k, sa.func.count().over()).order_by(rest.c.k.desc()).limit(1)
    ).first()
    if last is None:
        return None
    return CarvedRange(end=last[0], rows=int(last[1]))
