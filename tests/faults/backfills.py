"""Backfills used only by the fault-injection suite (loaded through BACKFILL_MODULES,
next to tests.backfills_for_tests, in the worker subprocesses).

`fault_crash` increments the same per-row counter as `test_touch`, but when its
range holds a row listed in `fault_crash_rows` it SIGKILLs its own process in the
middle of the batch transaction: a batch that kills its worker every time (an
out-of-memory kill, a segfault in a C extension).
"""
from __future__ import annotations

import os
import signal

import sqlalchemy as sa

from backend.backfill.catalog import register
from backend.backfill.definition import SqlBackfill
from tests.backfills_for_tests import touch_rows

fault_crash_rows = sa.table("fault_crash_rows", sa.column("id", sa.Integer))

CREATE_TABLES = ["CREATE TABLE fault_crash_rows (id INTEGER PRIMARY KEY)"]


@register
class CrashingTouch(SqlBackfill):
    name = "fault_crash"
    table = touch_rows
    batch_size = 10
    max_parallel = 1
    max_attempts = 2

    def statement(self, where):
        return sa.update(touch_rows).where(where).values(touched=touch_rows.c.touched + 1)

    def process(self, connection, key_range):
        changed = super().process(connection, key_range)
        crashing = connection.execute(
            sa.select(sa.func.count()).select_from(fault_crash_rows)
            .where(key_range.clause(fault_crash_rows.c.id))
        ).scalar_one()
        if crashing:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies with the transaction open
        return changed


@register
class OverrunningTouch(SqlBackfill):
    """Holds its transaction open longer than the lease (BACKFILL_LEASE_SECONDS=3 in
    the suite): a duplicate may claim the batch while the first holder still works."""

    name = "fault_overrun"
    table = touch_rows
    batch_size = 10
    max_parallel = 1
    seconds_in_transaction = 4.0

    def statement(self, where):
        return sa.update(touch_rows).where(where).values(touched=touch_rows.c.touched + 1)

    def process(self, connection, key_range):
        import time

        changed = super().process(connection, key_range)
        connection.exec_driver_sql("SELECT 'fault_overrun sleeping'")
        time.sleep(self.seconds_in_transaction)
        return changed
