"""Backfills for the in-process lanes tests (BACKFILL_MODULES in subprocesses):
`test_touch` variants that log, in the batch's own transaction, which database
session ran the batch and when, so that a test can see batches overlap and count
each committed batch exactly once."""
from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from backend.backfill.registry import register
from tests.backfills_for_tests import TouchRows

lane_log = sa.table("lane_log", sa.column("batch_end", sa.Integer), sa.column("backend_pid", sa.Integer),
                    sa.column("thread", sa.String), sa.column("started", sa.Float), sa.column("ended", sa.Float))

CREATE_TABLES = ["CREATE TABLE lane_log (batch_end INTEGER NOT NULL, backend_pid INTEGER NOT NULL, "
                 "thread VARCHAR(40) NOT NULL, started FLOAT NOT NULL, ended FLOAT NOT NULL)"]


@register
class TouchRowsLogged(TouchRows):
    """test_touch, 0.15 s asleep in each batch, and a lane_log row per batch."""

    name = "test_touch_lanes"
    batch_size = 5
    max_parallel = 4
    seconds_in_batch = 0.15

    def process(self, connection, key_range):
        started = time.time()
        changed = super().process(connection, key_range)
        time.sleep(self.seconds_in_batch)
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() \
            if connection.dialect.name == "postgresql" else 0
        connection.execute(sa.insert(lane_log).values(
            batch_end=key_range.end, backend_pid=pid, thread=str(threading.get_ident()), started=started,
            ended=time.time()))
        return changed


@register
class TouchRowsLoggedOneAtATime(TouchRowsLogged):
    name = "test_touch_lanes_single"
    max_parallel = 1


def create_tables(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for statement in CREATE_TABLES:
            connection.exec_driver_sql(statement)


def logged_batches(engine: sa.Engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(sa.select(lane_log).order_by(lane_log.c.started)).mappings()]


def overlapping_sessions(log: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs of batches that ran at the same time on two different sessions/threads."""
    return [(a, b) for i, a in enumerate(log) for b in log[i + 1:]
            if a["started"] < b["ended"] and b["started"] < a["ended"]
            and (a["backend_pid"], a["thread"]) != (b["backend_pid"], b["thread"])]
