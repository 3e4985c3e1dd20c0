"""A full run through real `celery -A worker worker` subprocesses, a real Redis
(our own redis-server) and a real PostgreSQL database."""
from __future__ import annotations

import pytest
from celery import Celery

from backend.backfill.model import RunStatus
from tests.backfill_helpers import insert_rows, touch_service, touched
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
    service = touch_service(pg_url)
    ids = [i for i in range(1, 801) if i % 7]  # gaps too
    insert_rows(service.engine, ids)
    run_id = service.schedule("test_touch")

    worker = CeleryWorker(worker_env(pg_url, redis_server.url), concurrency=2, log_path=tmp_path / "worker.log").start()
    try:
        client = Celery("client", broker=redis_server.url)
        client.send_task("worker.tasks.start_run", args=[run_id])
        final = wait_for(
            lambda: (run := service.get_run(run_id)).status in RunStatus.FINISHED and run,
            timeout=90, message="the run to finish",
        )
    finally:
        worker.stop()
    assert final.status == RunStatus.COMPLETED, (tmp_path / "worker.log").read_text()[-3000:]
    assert touched(service.engine) == {i: 1 for i in ids}
    assert final.rows_done == len(ids) and final.batches_done == -(-len(ids) // 10)
    assert final.executor == "celery"
    service.engine.dispose()


def test_pause_resume_cancel_and_retry_on_real_workers_apply_every_row_once(pg_url, redis_server, tmp_path):
    """Controls take effect at batch boundaries on the workers; nothing is lost or doubled."""
    from backend.backfill.model import BatchStatus

    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, 301))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) VALUES (297)")  # the last batch fails
    run_id = service.schedule("test_touch_slow")  # 60 batches of 5, 0.3 s each, 2 in flight
    client = Celery("client", broker=redis_server.url)

    def dispatch(ids):
        for batch_id in ids:
            client.send_task("worker.tasks.run_batch", args=[batch_id])

    worker = CeleryWorker(worker_env(pg_url, redis_server.url), concurrency=2, log_path=tmp_path / "worker.log").start()
    try:
        client.send_task("worker.tasks.start_run", args=[run_id])
        wait_for(lambda: service.get_run(run_id).batches_done >= 5, timeout=60, message="some batches")
        service.pause(run_id, actor="test")
        # Batches in flight finish; then nothing moves.
        wait_for(lambda: not _in_flight_running(service, run_id), timeout=30, message="in-flight batches")
        frozen = service.get_run(run_id).rows_done
        import time

        time.sleep(1.5)
        assert service.get_run(run_id).rows_done == frozen
        assert service.get_run(run_id).status == "paused"
        service.resume(run_id, actor="test", dispatch=dispatch)
        final = wait_for(lambda: (r := service.get_run(run_id)).status in RunStatus.FINISHED and r,
                         timeout=90, message="the run to stop")
        assert final.status == RunStatus.FAILED and "poisoned row in range" in final.last_error
        with service.engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM touch_poison")
        service.retry_failed(run_id, actor="test", dispatch=dispatch)
        final = wait_for(lambda: (r := service.get_run(run_id)).status in RunStatus.FINISHED and r,
                         timeout=60, message="the retried run")
    finally:
        worker.stop()
    assert final.status == RunStatus.COMPLETED, (tmp_path / "worker.log").read_text()[-3000:]
    assert touched(service.engine) == {i: 1 for i in range(1, 301)}
    assert final.rows_done == 300 and final.batches_failed == 0
    with service.engine.connect() as connection:
        statuses = connection.exec_driver_sql(
            f"SELECT DISTINCT status FROM backfill_batches WHERE run_id = {run_id}").scalars().all()
    assert statuses == [BatchStatus.SUCCEEDED]
    # Cancel: a second run of the same backfill, cancelled while running, stops for good.
    run2 = service.schedule("test_touch_slow")
    service.start(run2, executor="celery")
    service.cancel(run2, actor="test")
    assert service.advance(run2) == [] and service.get_run(run2).status == RunStatus.CANCELLED
    service.engine.dispose()


def _in_flight_running(service, run_id) -> bool:
    with service.engine.connect() as connection:
        return bool(connection.exec_driver_sql(
            f"SELECT count(*) FROM backfill_batches WHERE run_id = {run_id} AND status = 'running'").scalar())
