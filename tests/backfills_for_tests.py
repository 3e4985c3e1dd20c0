"""Backfills used by the engine tests (loaded through BACKFILL_MODULES in worker
subprocesses). Each one increments a per-row counter without any filter, so a
row processed twice shows 2: loss and double application are both visible.

A row id listed in `touch_poison` makes its batch raise AFTER its UPDATE ran, to
prove that the change rolls back with the batch.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.catalog import register
from backend.backfill.definition import RowBackfill, SqlBackfill

touch_rows = sa.table("touch_rows", sa.column("id", sa.Integer), sa.column("touched", sa.Integer))
touch_poison = sa.table("touch_poison", sa.column("id", sa.Integer))
touch_str = sa.table("touch_str", sa.column("code", sa.String), sa.column("touched", sa.Integer))
touch_uuid = sa.table("touch_uuid", sa.column("id", sa.Uuid), sa.column("touched", sa.Integer))

CREATE_TABLES = [
    "CREATE TABLE touch_rows (id INTEGER PRIMARY KEY, touched INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE touch_poison (id INTEGER PRIMARY KEY)",
    "CREATE TABLE touch_str (code VARCHAR(40) PRIMARY KEY, touched INTEGER NOT NULL DEFAULT 0)",
]


class PoisonedBatch(RuntimeError):
    pass


def _raise_if_poisoned(connection, where) -> None:
    poisoned = connection.execute(
        sa.select(sa.func.count()).select_from(touch_rows.join(touch_poison, touch_poison.c.id == touch_rows.c.id))
        .where(where)
    ).scalar_one()
    if poisoned:
        raise PoisonedBatch("poisoned row in range")


@register
class TouchRows(SqlBackfill):
    name = "test_touch"
    table = touch_rows
    batch_size = 10
    max_parallel = 2
    max_attempts = 3

    def statement(self, where):
        return sa.update(touch_rows).where(where).values(touched=touch_rows.c.touched + 1)

    def process(self, connection, key_range):
        changed = super().process(connection, key_range)
        _raise_if_poisoned(connection, self.range_condition(key_range))
        return changed


@register
class TouchRowsSlowly(TouchRows):
    """The same with a sleep inside the transaction, to kill workers mid-batch."""

    name = "test_touch_slow"
    batch_size = 5

    def process(self, connection, key_range):
        import time

        changed = super().process(connection, key_range)
        time.sleep(0.3)
        return changed


@register
class TouchRowsFiltered(SqlBackfill):
    """Only rows with touched = 0 need work: the gate's data check has a filter."""

    name = "test_touch_filtered"
    table = touch_rows
    batch_size = 7

    def pending_filter(self):
        return touch_rows.c.touched == 0

    def statement(self, where):
        return sa.update(touch_rows).where(where).values(touched=touch_rows.c.touched + 1)


@register
class TouchStrings(RowBackfill):
    name = "test_touch_str"
    table = touch_str
    key = "code"
    key_type = "str"
    columns = ("code", "touched")
    batch_size = 4

    def transform(self, row):
        return {"touched": row["touched"] + 1}


@register
class TouchUuids(SqlBackfill):
    name = "test_touch_uuid"
    table = touch_uuid
    key_type = "uuid"
    batch_size = 3

    def statement(self, where):
        return sa.update(touch_uuid).where(where).values(touched=touch_uuid.c.touched + 1)
