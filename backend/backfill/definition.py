"""How a backfill is declared.

A backfill names the table it walks (its own Core table definition, never the live
ORM models, which will have changed by the time an old revision runs), the ordered
key, the filter for rows that still need work, and how to process one key range:
set-based SQL (`SqlBackfill`, preferred) or Python per row (`RowBackfill`).
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.bulk import write_rows
from backend.backfill.keys import KEY_TYPES, KeyRange
from backend.backfill.model import Run, Transition
from backend.backfill.windows import parse_windows


class Backfill:
    """Base class. Subclasses set the class attributes and implement `process`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    table: ClassVar[sa.Table]
    key: ClassVar[str] = "id"
    key_type: ClassVar[str] = "int"
    batch_size: ClassVar[int] = 1000
    # Batches the coordinator keeps in flight: a limit on load, not a mutual exclusion.
    # After a split (statement timeout) or a retry of failed batches a few more may
    # run at once; batches that must never overlap take a lock (see translation_slugs).
    max_parallel: ClassVar[int] = 4
    max_attempts: ClassVar[int] = 3
    # Overrides of the global settings (None: use the global one); see policy.py.
    windows: ClassVar[str | None] = None  # e.g. "sat,sun 01:00-05:00 Europe/Berlin"; "" = always open
    pause_seconds: ClassVar[float | None] = None
    target_batch_seconds: ClassVar[float | None] = None
    min_batch_size: ClassVar[int | None] = None
    max_batch_size: ClassVar[int | None] = None
    health_checks: ClassVar[tuple[str, ...] | None] = None
    # The run stops as failed once failed batches exceed this share of the finished
    # ones (after `min_batches_for_failed_share`); 0 = the first failed batch.
    max_failed_share: ClassVar[float] = 0.0
    min_batches_for_failed_share: ClassVar[int] = 20
    # True for work that cannot run in a transaction (a schema job's CREATE INDEX
    # CONCURRENTLY): the runner calls `process_outside` before the transaction that
    # records the batch's success, instead of `process` inside it; the work must then
    # be idempotent (schema_jobs.py says how).
    outside_transaction: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.key_type not in KEY_TYPES:
            raise TypeError(f"{cls.__name__}.key_type must be one of {KEY_TYPES}")
        if cls.windows:
            parse_windows(cls.windows)  # a bad spec fails at import, naming the bad part

    @property
    def key_column(self) -> sa.ColumnElement:
        return self.table.c[self.key]

    def pending_filter(self) -> sa.ColumnElement[bool] | None:
        """Rows that still need work, or None when every row in range is processed.

        The Alembic gate runs it over the whole table, so a finished backfill must
        leave it matching nothing."""
        return None

    def range_condition(self, key_range: KeyRange) -> sa.ColumnElement[bool]:
        condition = key_range.clause(self.key_column)
        pending = self.pending_filter()
        return condition if pending is None else sa.and_(condition, pending)

    def process_outside(self, engine, batch, run, token: str, settings) -> int:
        """For `outside_transaction` backfills: the batch's work on connections of its
        own; return how many rows (objects) it changed."""
        raise NotImplementedError

    def process(self, connection: Connection, key_range: KeyRange) -> int:
        """Process the rows of `key_range` inside the caller's transaction; return
        how many rows were changed."""
        raise NotImplementedError

    # Lifecycle hooks: each called once per status change of a run of this backfill,
    # after the change committed, never inside a batch's transaction, in whichever
    # process claims the change (announce.py). A hook that raises is logged and the run
    # goes on. Keep them short: they run between that process's batches or requests.
    def on_start(self, run: Run, transition: Transition) -> None:
        """pending -> running."""

    def on_pause(self, run: Run, transition: Transition) -> None:
        """running or waiting -> paused (an operator's pause)."""

    def on_resume(self, run: Run, transition: Transition) -> None:
        """paused -> running (resumed), or failed -> running (its failed batches retried)."""

    def on_complete(self, run: Run, transition: Transition) -> None:
        """-> completed: every batch succeeded (or there was nothing to do)."""

    def on_fail(self, run: Run, transition: Transition) -> None:
        """-> failed: too many batches failed; `run.last_error` says why."""

    def on_cancel(self, run: Run, transition: Transition) -> None:
        """-> cancelled (an operator's cancel)."""


class SqlBackfill(Backfill):
    """A backfill done by one set-based statement per batch."""

    def statement(self, where: sa.ColumnElement[bool]) -> sa.Executable:
        """The UPDATE (or other DML) restricted by `where` (range and pending filter)."""
        raise NotImplementedError

    def process(self, connection: Connection, key_range: KeyRange) -> int:
        return connection.execute(self.statement(self.range_condition(key_range))).rowcount


class RowBackfill(Backfill):
    """A backfill whose logic needs Python for each row.

    The batch's rows are read with `columns` (locked FOR NO KEY UPDATE on PostgreSQL
    so that a concurrent write cannot be lost). `batch_context` loads, in one query,
    whatever the whole batch needs from elsewhere, so that `transform` does no I/O;
    each row is `transform`ed into the values to write back, or None to leave it
    alone. The new values are written with one statement per batch (backfill.bulk),
    in the batch's transaction; `after_write` then runs in that transaction too.

    The batch size adapts to aim each batch at `target_batch_seconds` (100 ms by
    default): per-row costs differ too much between backfills for one fixed size,
    and a shop write waiting for a row of the batch waits at most that long."""

    columns: ClassVar[tuple[str, ...]] = ()
    target_batch_seconds: ClassVar[float | None] = 0.1

    def batch_context(self, connection: Connection, rows: list[Mapping[str, Any]]) -> Any:
        """What `transform` needs beyond the row itself, for the whole batch at once."""
        return None

    def transform(self, row: Mapping[str, Any], context: Any) -> Mapping[str, Any] | None:
        raise NotImplementedError

    def after_write(self, connection: Connection, rows: list[Mapping[str, Any]], context: Any) -> None:
        """After the bulk write, before the batch commits. Where written values must be
        checked against concurrent writers under a lock held until commit (the slug
        backfill), the check and the lock go here, so that the lock covers the check
        and the commit, not the whole batch, and batches can run side by side."""

    def _updates(self, rows: list[Mapping[str, Any]], context: Any) -> Iterable[tuple[Any, Mapping]]:
        """(key, new values) per row that changes."""
        for row in rows:
            values = self.transform(row, context)
            if values:
                yield row[self.key], values

    def process(self, connection: Connection, key_range: KeyRange) -> int:
        selected = [self.key_column, *(self.table.c[name] for name in self.columns if name != self.key)]
        query = sa.select(*selected).where(self.range_condition(key_range)).order_by(self.key_column)
        if connection.dialect.name == "postgresql":
            # The lock the UPDATE below takes anyway: the shop's inserts of rows that
            # reference these (an order's items) need not wait for the batch.
            query = query.with_for_update(key_share=True)
        rows = connection.execute(query).mappings().all()  # read-only mappings: a third of dict()'s cost
        if not rows:
            return 0
        bounds = (rows[0][self.key], rows[-1][self.key])  # in the database's own order
        context = self.batch_context(connection, rows)
        changed = write_rows(connection, self.table, self.key, self._updates(rows, context), bounds=bounds)
        self.after_write(connection, rows, context)
        return changed
