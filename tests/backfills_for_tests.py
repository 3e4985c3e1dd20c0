"""Backfills used by the engine tests (loaded through BACKFILL_MODULES in worker
subprocesses). Each one increments a per-row counter without any filter, so a
row processed twice shows 2: loss and double application are both visible.

A row id listed in `touch_poison` makes its batch raise AFTER its UPDATE ran, to
prove that the change rolls back with the batch.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.registry import register
from backend.backfill.definition import RowBackfill, SqlBackfill

touch_rows = sa.table("touch_rows", sa.column("id", sa.Integer), sa.column("touched", sa.Integer))
touch_poison = sa.table("touch_poison", sa.column("id", sa.Integer))
touch_str = sa.table("touch_str", sa.column("code", sa.String), sa.column("touched", sa.Integer))
touch_uuid = sa.table("touch_uuid", sa.column("id", sa.Uuid), sa.column("touched", sa.Integer))

CREATE_TABLES = [
    "CREATE TABLE touch_rows (id INTEGER PRIMARY KEY, touched INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE touch_poison (id INTEGER PRIMARY KEY)",
    "CREATE TABLE touch_str (code VARCHAR(40) PRIMARY KEY, touched INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE touch_flags (name VARCHAR(40) PRIMARY KEY)",
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
class TouchRowsPerRow(RowBackfill):
    """test_touch as a per-row backfill: rows read, transformed in Python, written
    back with one statement per batch (backend.backfill.bulk)."""

    name = "test_touch_rows"
    table = touch_rows
    columns = ("id", "touched")
    batch_size = 10
    max_parallel = 2
    max_attempts = 3
    target_batch_seconds = None  # fixed batches, as test_touch

    def transform(self, row, context):
        return {"touched": row["touched"] + 1}

    def process(self, connection, key_range):
        changed = super().process(connection, key_range)
        _raise_if_poisoned(connection, self.range_condition(key_range))
        return changed


@register
class TouchRowsPerRowSlowly(TouchRowsPerRow):
    """test_touch_slow as a per-row backfill, to kill workers inside its bulk write's transaction."""

    name = "test_touch_slow_rows"
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
    target_batch_seconds = None  # fixed batches: the tests count them

    def transform(self, row, context):
        return {"touched": row["touched"] + 1}


@register
class TouchUuids(SqlBackfill):
    name = "test_touch_uuid"
    table = touch_uuid
    key_type = "uuid"
    batch_size = 3

    def statement(self, where):
        return sa.update(touch_uuid).where(where).values(touched=touch_uuid.c.touched + 1)


class FakeClock:
    """A clock the engine reads (backend.backfill.clock.use_clock) and the test
    moves: sleeping advances it, and so does each batch of the paced backfills."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def sleep(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=max(seconds, 0.001))


ACTIVE_CLOCK: FakeClock | None = None
SECONDS_PER_ROW = 0.0  # simulated work per row, on ACTIVE_CLOCK


def _simulate_work(rows: int) -> None:
    if ACTIVE_CLOCK is not None and SECONDS_PER_ROW:
        ACTIVE_CLOCK.sleep(rows * SECONDS_PER_ROW)


@register
class TouchInWindow(SqlBackfill):
    """Only between 01:00 and 02:00 UTC; each row "takes" SECONDS_PER_ROW."""

    name = "test_touch_windowed"
    table = touch_rows
    batch_size = 10
    max_parallel = 1
    windows = "daily 01:00-02:00"

    def statement(self, where):
        return sa.update(touch_rows).where(where).values(touched=touch_rows.c.touched + 1)

    def process(self, connection, key_range):
        changed = super().process(connection, key_range)
        _simulate_work(changed)
        return changed


@register
class TouchAdaptive(TouchInWindow):
    """Always open, batch size adapted to a 1 s target within [5, 200]."""

    name = "test_touch_adaptive"
    windows = ""
    batch_size = 20
    target_batch_seconds = 1.0
    min_batch_size = 5
    max_batch_size = 200


@register
class TouchTolerant(TouchRows):
    """Tolerates failed batches up to half of the finished ones (after 4)."""

    name = "test_touch_tolerant"
    max_parallel = 1
    max_attempts = 1
    max_failed_share = 0.5
    min_batches_for_failed_share = 4


touch_flags = sa.table("touch_flags", sa.column("name", sa.String))


@register
class TouchWithHealthFlag(TouchRows):
    """Health-checked by `touch_flags`: a row named 'sick' trips the check."""

    name = "test_touch_health"
    max_parallel = 1
    health_checks = ("test_flag",)


@register
class TouchSlowSql(SqlBackfill):
    """PostgreSQL only: sleeps 0.1 s per row in range inside the statement, so a
    big batch hits the statement timeout and must be split."""

    name = "test_touch_pg_sleep"
    table = touch_rows
    batch_size = 16
    max_parallel = 1
    max_attempts = 2

    def statement(self, where):
        return sa.update(touch_rows).where(where).values(touched=touch_rows.c.touched + 1)

    def process(self, connection, key_range):
        rows = connection.execute(
            sa.select(sa.func.count()).select_from(touch_rows).where(self.range_condition(key_range))
        ).scalar_one()
        connection.execute(sa.text("SELECT pg_sleep(:s)"), {"s": rows * 0.1})
        return super().process(connection, key_range)


# (jit, statement_timeout) as each batch of test_touch_pg_settings saw them.
SEEN_PG_SETTINGS: list[tuple[str, str]] = []


@register
class TouchRecordingPgSettings(TouchRows):
    """PostgreSQL only: records the settings the engine gives its batch transaction."""

    name = "test_touch_pg_settings"
    max_parallel = 1

    def process(self, connection, key_range):
        SEEN_PG_SETTINGS.append(tuple(connection.execute(
            sa.text("SELECT current_setting('jit'), current_setting('statement_timeout')")).one()))
        return super().process(connection, key_range)


def _flag_check(connection, backfill, settings):
    sick = connection.execute(sa.select(touch_flags.c.name).where(touch_flags.c.name == "sick")).first()
    return "the test flag says the database is sick" if sick else None


from backend.backfill.health import register_health_check  # noqa: E402

register_health_check("test_flag")(_flag_check)
