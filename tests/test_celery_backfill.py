"""A full run through real `celery -A worker worker` subprocesses, a real Redis
(our own redis-server) and a real PostgreSQL database."""
from __future__ import annotations

import pytest
from celery import Celery

from backend.backfill.state import RunStatus
from backend.schema.alembic_api import upgrade
from tests.backfill_helpers import create_touch_tables, insert_rows, make_service, touched
from tests.processes import CeleryWorker, RedisServer, subprocess_env, wait_for


@pytest.fixture
def redis_server(redis_available):
    server = RedisServer().start()
    yield server
    server.kill()


def worker_env(pg_url: str, broker_url: str) -> dict[str, str]:
    return subprocess_env(
        DATABASE_URL=pg_url, CELERY_BROKER_URL=broker_url, BACKFILL_MODULES="tests.backfills_for_tests",
        BACKFILL_LEASE_SECONDS="5", BACKFILL_REDISPATCH_AFTER_SECONDS="3",
    )


def test_run_on_two_worker_processes_touches_every_row_exactly_once(pg_url, redis_server, tmp_path):
    upgrade(pg_url, "head")
    service = make_service(pg_url)
    create_touch_tables(service.engine)
    ids = [i for i in range(1, 801) if i % 7]  # gaps too
    insert_rows(service.engine, ids)
    run_id = service.schedule("test_touch")

    worker = CeleryWorker(worker_env(pg_url, redis_server.url), concurrency=2, log_path=tmp_path / "worker.log").start()
    try:
        client = Celery("client", broker=redis_server.url)
        client.send_task("worker.tasks.start_run", args=[run_id])
        final = wait_for(
            lambda: (run := service.get_run(run_id))["status"] in RunStatus.FINISHED and run,
            timeout=90, message="the run to finish",
        )
    finally:
        worker.stop()
    assert final["status"] == RunStatus.COMPLETED, (tmp_path / "worker.log").read_text()[-3000:]
    assert touched(service.engine) == {i: 1 for i in ids}
    assert final["rows_done"] == len(ids) and final["batches_done"] == -(-len(ids) // 10)
    assert final["executor"] == "celery"
    service.engine.dispose()
