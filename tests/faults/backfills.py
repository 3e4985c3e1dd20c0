"""Backfills used only by the fault-injection suite (loaded through BACKFILL_MODULES,
next to tests.backfills_for_tests, in the worker subprocesses). Each increments the
same per-row counter as `test_touch`, of which they are variants.

`fault_crash` SIGKILLs its own process in the middle of the batch transaction when
its range holds a row listed in `fault_crash_rows`: a batch that kills its worker
every time (an out-of-memory kill, a segfault in a C extension).

`fault_windowed` may only run in a nightly window. The suite moves its workers'
clock to open and close it: with FAULT_CLOCK_FILE set, the engine's clock in a
worker process is the real time shifted by the seconds written in that file.
"""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from backend.backfill.registry import register
from backend.backfill.clock import set_clock
from tests.backfills_for_tests import TouchRows, TouchRowsSlowly

fault_crash_rows = sa.table("fault_crash_rows", sa.column("id", sa.Integer))

CREATE_TABLES = ["CREATE TABLE fault_crash_rows (id INTEGER PRIMARY KEY)"]
CLOCK_FILE_VARIABLE = "FAULT_CLOCK_FILE"


@register
class CrashingTouch(TouchRows):
    name = "fault_crash"
    max_parallel = 1
    max_attempts = 2

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
class OverrunningTouch(TouchRows):
    """Holds its transaction open longer than the lease (BACKFILL_LEASE_SECONDS=3 in
    the suite): a duplicate may claim the batch while the first holder still works."""

    name = "fault_overrun"
    max_parallel = 1
    seconds_in_transaction = 4.0

    def process(self, connection, key_range):
        changed = super().process(connection, key_range)
        connection.exec_driver_sql("SELECT 'fault_overrun sleeping'")
        time.sleep(self.seconds_in_transaction)
        return changed


@register
class WindowedSlowTouch(TouchRowsSlowly):
    """test_touch_slow (0.3 s asleep in each batch transaction), 01:00-02:00 UTC only."""

    name = "fault_windowed"
    max_parallel = 1
    windows = "daily 01:00-02:00"


class ShiftedClock:
    """Real time plus the offset in seconds that `path` holds (none: no offset)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self) -> datetime:
        try:
            offset = float(self.path.read_text() or 0)
        except FileNotFoundError:
            offset = 0.0
        return datetime.now(timezone.utc) + timedelta(seconds=offset)


def shift_clock(path: Path, to: datetime) -> None:
    """Make the ShiftedClock reading `path` say `to` now (and move on from there)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(repr((to - datetime.now(timezone.utc)).total_seconds()))
    temporary.replace(path)  # atomic: a worker never reads a half-written offset


if os.environ.get(CLOCK_FILE_VARIABLE):
    set_clock(ShiftedClock(Path(os.environ[CLOCK_FILE_VARIABLE])))
