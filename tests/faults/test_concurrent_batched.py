"""Fault 6: two `python run_migrations.py --batched` processes start at once on the
same database, in-process (no broker).

The shop is seeded on the foundation revision (0002), so both meet the gates of
0006 and 0007 and then run the ungated backfill at head; a test backfill
(`test_touch_slow`, 0.3 s per batch) is scheduled too, so that both reach it while
it is still running. The test holds the schema lock until both processes wait on it
(tests/test_concurrent_upgrade.py's release_when_all_wait), so that they race from
the same instant. (Fault 7, four `run.py` at once, is
tests/test_concurrent_upgrade.py::test_run_py_replicas_on_one_postgresql_database.)
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from backend.backfill.model import Batch, RunStatus
from backend.migrations.alembic_api import current_revisions, head_revisions, upgrade
from tests.backfill_helpers import create_touch_tables, insert_rows, make_service
from tests.faults.support import assert_ranges_tile
from tests.processes import ROOT, subprocess_env
from tests.shop_data import seed_shop
from tests.test_concurrent_upgrade import release_when_all_wait

FOUNDATION = "0002_backfill_state"
TOUCH_IDS = list(range(1, 41))  # 8 slow batches


@pytest.mark.slow
def test_two_batched_migrations_at_once_run_each_range_once(pg_url):
    upgrade(pg_url, FOUNDATION)
    service = make_service(pg_url)
    engine = service.engine
    expected_totals = seed_shop(engine, orders=120)
    create_touch_tables(engine)
    insert_rows(engine, TOUCH_IDS)
    service.schedule("test_touch_slow")

    env = subprocess_env(DATABASE_URL=pg_url, BACKFILL_MODULES="tests.backfills_for_tests", CELERY_BROKER_URL="",
                         BACKFILL_LEASE_SECONDS="3", BACKFILL_RETRY_BACKOFF_SECONDS="0.05")
    processes = [subprocess.Popen([sys.executable, "run_migrations.py", "--batched"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        release_when_all_wait(pg_url, processes)
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stdout + stderr
        assert "backfills completed in this process" in stdout, stdout
    assert current_revisions(pg_url) == head_revisions()

    runs = service.list_runs()
    assert sorted(run.name for run in runs) == sorted(
        ["orders_total_cents", "translation_slugs", "users_email_normalized", "test_touch_slow",
         "type_change:order_items.unit_price_cents", "type_change:products.price_cents"]), runs
    for run in runs:
        assert run.status == RunStatus.COMPLETED, run
        with engine.connect() as connection:
            batches = [Batch.from_row(b) for b in connection.execute(
                sa.text("SELECT * FROM backfill_batches WHERE run_id = :r"), {"r": run.id}).mappings()]
        assert {b.status for b in batches} == {"succeeded"}, (run, batches)
        assert_ranges_tile(run, batches)  # no key range carved twice
        assert run.batches_done == len(batches)
        assert run.rows_done == sum(b.rows_affected for b in batches)

    with engine.connect() as connection:
        totals = dict(connection.execute(sa.text("SELECT id, total_cents FROM orders")).all())
        touched = dict(connection.execute(sa.text("SELECT id, touched FROM touch_rows")).all())
    assert totals == expected_totals
    assert touched == {i: 1 for i in TOUCH_IDS}  # every row once: no batch ran twice
    by_name = {run.name: run for run in runs}
    assert by_name["test_touch_slow"].rows_done == len(TOUCH_IDS)
    assert by_name["orders_total_cents"].rows_done == len(expected_totals)
    engine.dispose()
