"""The in-process executor's lanes: batches of one run at once on separate
connections (PostgreSQL), one at a time on SQLite and for max_parallel = 1, every row
exactly once, and pause/cancel noticed by every lane."""
from __future__ import annotations

import os
import threading

import pytest
import sqlalchemy as sa

from backend.backfill.registry import load_catalog
from backend.backfill.inprocess import lane_count, run_in_process
from backend.backfill.service import BackfillService
from backend.backfill.settings import EngineSettings
from backend.backfill.model import BatchStatus, RunStatus
from backend.backfill.state import backfill_batches
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from tests import backfills_for_lanes
from tests.backfill_helpers import FAST_SETTINGS, create_touch_tables, insert_rows, touched
from tests.faults.support import wait_until

IDS = list(range(1, 61))  # 12 batches of 5
TWO_LANES = EngineSettings(**{**FAST_SETTINGS.__dict__, "inprocess_lanes": 2})


def lanes_service(url: str, settings: EngineSettings = FAST_SETTINGS, **engine_options) -> BackfillService:
    upgrade(url, "head")
    catalog = load_catalog(["tests.backfills_for_tests", "tests.backfills_for_lanes"])
    service = BackfillService(create_db_engine(url, **engine_options), catalog, settings)
    create_touch_tables(service.engine)
    backfills_for_lanes.create_tables(service.engine)
    return service


def time_overlaps(log: list[dict]) -> list[tuple[dict, dict]]:
    return [(a, b) for i, a in enumerate(log) for b in log[i + 1:] if b["started"] < a["ended"]]


def assert_each_batch_once(service, run_id: int) -> list[dict]:
    """Every row touched once, and one log row per batch (logged in its transaction)."""
    assert touched(service.engine) == {i: 1 for i in IDS}
    with service.engine.connect() as connection:
        batches = connection.execute(sa.select(backfill_batches.c.key_end, backfill_batches.c.status)
                                     .where(backfill_batches.c.run_id == run_id)).all()
    log = backfills_for_lanes.logged_batches(service.engine)
    assert {status for _, status in batches} == {BatchStatus.SUCCEEDED}
    assert sorted(row["batch_end"] for row in log) == sorted(int(end) for end, _ in batches)
    return log


def test_lanes_run_batches_at_once_on_separate_connections(pg_url):
    service = lanes_service(pg_url, TWO_LANES)
    try:
        insert_rows(service.engine, IDS)
        run_id = service.schedule("test_touch_lanes")
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
        log = assert_each_batch_once(service, run_id)
        assert len({row["backend_pid"] for row in log}) >= 2, log
        assert backfills_for_lanes.overlapping_sessions(log), f"no two batches overlapped: {log}"
        assert max(len({b["backend_pid"] for b in log if b["started"] < a["ended"] and a["started"] < b["ended"]})
                   for a in log) <= 2  # two lanes, never more sessions at once
    finally:
        service.engine.dispose()


@pytest.mark.parametrize("name", ["test_touch_lanes", "test_touch_lanes_single"])
def test_sqlite_and_max_parallel_1_run_one_batch_at_a_time(db_url, name):
    if name == "test_touch_lanes" and not db_url.startswith("sqlite"):
        pytest.skip("on PostgreSQL this backfill runs in lanes")
    service = lanes_service(db_url, EngineSettings(**{**FAST_SETTINGS.__dict__, "inprocess_lanes": 4}))
    try:
        insert_rows(service.engine, IDS)
        run_id = service.schedule(name)
        assert run_in_process(service, run_id, sleep=lambda s: None, lanes=4).status == RunStatus.COMPLETED
        log = assert_each_batch_once(service, run_id)
        assert not time_overlaps(log), log
        assert len({row["thread"] for row in log}) == 1
    finally:
        service.engine.dispose()


def test_lane_count(pg_url, sqlite_url):
    default = lanes_service(pg_url)
    forced = BackfillService(default.engine, default.catalog,
                             EngineSettings(**{**FAST_SETTINGS.__dict__, "inprocess_lanes": 3}))
    small_pool = BackfillService(create_db_engine(pg_url, pool_size=2, max_overflow=0), default.catalog,
                                 forced.settings)
    sqlite = BackfillService(create_db_engine(sqlite_url), default.catalog, forced.settings)
    try:
        assert lane_count(default, 4) == min(4, os.cpu_count())
        assert lane_count(forced, 4) == 3 and lane_count(forced, 2) == 2 and lane_count(forced, 1) == 1
        assert lane_count(forced, 4, wanted=8) == 4
        assert lane_count(small_pool, 4) == 1  # one connection of two left for the driver
        assert lane_count(sqlite, 4) == 1
    finally:
        for svc in (default, small_pool, sqlite):
            svc.engine.dispose()


@pytest.mark.parametrize("control", ["pause", "cancel"])
def test_pause_and_cancel_stop_every_lane(pg_url, control):
    service = lanes_service(pg_url, TWO_LANES)
    try:
        insert_rows(service.engine, IDS)
        run_id = service.schedule("test_touch_lanes")
        result = {}
        driver = threading.Thread(target=lambda: result.update(progress=run_in_process(service, run_id)))
        driver.start()
        wait_until(lambda: service.get_run(run_id).batches_done >= 2, 30, "two batches done")
        getattr(service, control)(run_id, actor="test")
        driver.join(30)
        assert not driver.is_alive()
        assert result["progress"].status == (RunStatus.PAUSED if control == "pause" else RunStatus.CANCELLED)
        with service.engine.connect() as connection:
            statuses = connection.execute(sa.select(backfill_batches.c.status)
                                          .where(backfill_batches.c.run_id == run_id)).scalars().all()
        assert BatchStatus.RUNNING not in statuses  # every lane finished its batch and stopped
        done = service.get_run(run_id).batches_done
        assert done < 12 and sum(touched(service.engine).values()) == service.get_run(run_id).rows_done
        assert service.get_run(run_id).lease_owner is None
        if control == "pause":
            service.resume(run_id, actor="test")
            assert run_in_process(service, run_id).status == RunStatus.COMPLETED
            assert_each_batch_once(service, run_id)
    finally:
        service.engine.dispose()
