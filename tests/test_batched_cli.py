"""`python run_migrations.py --batched` as users run it: a subprocess from the
repository root, in-process on SQLite and through real Celery workers on PostgreSQL."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import sqlalchemy as sa

from backend.db import create_db_engine
from backend.migrations.alembic_api import current_revisions, head_revisions, upgrade
from tests.backfill_helpers import insert_rows, touch_service, touched
from tests.processes import ROOT, CeleryWorker, RedisServer, subprocess_env
from tests.shop_data import seed_shop

FOUNDATION = "0002_backfill_state"


def run_migrations(url: str, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run_migrations.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=subprocess_env(DATABASE_URL=url, BACKFILL_MODULES="tests.backfills_for_tests",
                           BACKFILL_RETRY_BACKOFF_SECONDS="0.01", **env),
    )


def run_statuses(engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT name, status FROM backfill_runs")).all())


def test_batched_in_process_brings_a_shop_from_the_foundation_to_head(db_url):
    upgrade(db_url, FOUNDATION)
    engine = create_db_engine(db_url)
    expected = seed_shop(engine, orders=120)
    result = run_migrations(db_url, "--batched")
    assert result.returncode == 0, result.stderr
    assert "0006_orders_total_not_null waits for backfill orders_total_cents" in result.stdout
    assert "applied 0007_translation_slugs_unique" in result.stdout
    assert "backfills completed in this process: orders_total_cents, translation_slugs, users_email_normalized" \
        in result.stdout
    assert current_revisions(db_url) == head_revisions()
    assert set(run_statuses(engine).values()) == {"completed"}
    with engine.connect() as connection:
        assert dict(connection.execute(sa.text("SELECT id, total_cents FROM orders")).all()) == expected
    status = run_migrations(db_url, "--status")
    assert status.returncode == 0
    assert "up to date" in status.stdout and "orders_total_cents" in status.stdout and "completed" in status.stdout
    engine.dispose()


def test_a_failing_backfill_exits_non_zero_with_one_line(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 31))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) VALUES (25)")
    service.schedule("test_touch")
    result = run_migrations(sqlite_url, "--batched", "--only", "test_touch")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Error: backfill test_touch" in result.stderr and "failed after 3 attempts" in result.stderr
    assert "poisoned row in range" in result.stderr
    assert touched(service.engine)[25] == 0 and touched(service.engine)[5] == 1
    service.engine.dispose()


def test_unknown_backfill_name_is_a_one_line_error(sqlite_url):
    result = run_migrations(sqlite_url, "--batched", "--only", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: unknown backfill 'nope' (known: ") and result.stderr.count("\n") == 1
    assert current_revisions(sqlite_url) == ()  # nothing was migrated


def closed_window_now() -> str:
    """A daily window that is surely closed for the next hour."""
    from datetime import datetime, timezone

    hour = (datetime.now(timezone.utc).hour + 2) % 24
    return f"daily {hour:02d}:00-{(hour + 1) % 24:02d}:00"


def test_outside_its_window_no_wait_leaves_the_run_waiting_and_exits_0(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    window = closed_window_now()
    result = run_migrations(sqlite_url, "--batched", "--only", "test_touch", "--no-wait", MAINTENANCE_WINDOWS=window)
    assert result.returncode == 0, result.stderr
    assert f"backfill test_touch (run {run_id}) waits: outside the maintenance windows ({window})" in result.stdout
    assert "continues at " in result.stdout and "run `python run_migrations.py --batched` again" in result.stdout
    assert "no backfill to run" not in result.stdout  # one is waiting
    assert service.get_run(run_id).status == "waiting"
    assert set(touched(service.engine).values()) == {0}
    service.engine.dispose()


def test_an_invalid_window_spec_stops_the_cli_naming_the_bad_part(sqlite_url):
    result = run_migrations(sqlite_url, "--batched", MAINTENANCE_WINDOWS="sat,sun 01:00-05:00 Europe/Berln")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "MAINTENANCE_WINDOWS: window 'sat,sun 01:00-05:00 Europe/Berln': unknown time zone 'Europe/Berln'" \
        in result.stderr
    assert current_revisions(sqlite_url) == ()


@pytest.fixture
def redis_server(redis_available):
    server = RedisServer().start()
    yield server
    server.kill()


def test_batched_through_celery_workers_on_postgresql(pg_url, redis_server, tmp_path):
    upgrade(pg_url, FOUNDATION)
    engine = create_db_engine(pg_url)
    expected = seed_shop(engine, orders=300)
    env = dict(CELERY_BROKER_URL=redis_server.url, BACKFILL_LEASE_SECONDS="5")
    worker = CeleryWorker(subprocess_env(DATABASE_URL=pg_url, BACKFILL_MODULES="tests.backfills_for_tests", **env),
                          concurrency=2, log_path=tmp_path / "worker.log").start()
    try:
        result = run_migrations(pg_url, "--batched", **env)
    finally:
        worker.stop()
    assert result.returncode == 0, result.stderr + (tmp_path / "worker.log").read_text()[-2000:]
    assert "backfills completed on the Celery workers" in result.stdout
    assert current_revisions(pg_url) == head_revisions()
    with engine.connect() as connection:
        assert dict(connection.execute(sa.text("SELECT id, total_cents FROM orders")).all()) == expected
        executors = set(connection.execute(sa.text("SELECT executor FROM backfill_runs")).scalars())
    assert executors == {"celery"}
    engine.dispose()


def dispatched_with_no_wait(pg_url: str, broker_url: str, rows: int):
    """A test_touch run over `rows` rows handed to the workers by `--batched --no-wait`
    (no worker running yet); returns the service and the run id."""
    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, rows + 1))
    run_id = service.schedule("test_touch")
    result = run_migrations(pg_url, "--batched", "--only", "test_touch", "--no-wait", CELERY_BROKER_URL=broker_url)
    assert result.returncode == 0, result.stderr
    assert f"backfill test_touch (run {run_id}) dispatched to the workers" in result.stdout
    return service, run_id


def start_worker(pg_url: str, broker_url: str, tmp_path) -> CeleryWorker:
    return CeleryWorker(subprocess_env(DATABASE_URL=pg_url, BACKFILL_MODULES="tests.backfills_for_tests",
                                       CELERY_BROKER_URL=broker_url), log_path=tmp_path / "worker.log").start()


def test_no_wait_dispatches_and_exits(pg_url, redis_server, tmp_path):
    service, run_id = dispatched_with_no_wait(pg_url, redis_server.url, rows=100)
    assert set(touched(service.engine).values()) == {0}  # no worker yet: nothing ran here
    worker = start_worker(pg_url, redis_server.url, tmp_path)
    try:
        from tests.processes import wait_for

        wait_for(lambda: service.get_run(run_id).status == "completed", timeout=60, message="the run")
    finally:
        worker.stop()
    assert touched(service.engine) == {i: 1 for i in range(1, 101)}
    service.engine.dispose()


def test_a_lost_start_message_is_recovered_from_the_database(pg_url, redis_server, tmp_path):
    """--no-wait dispatches, then Redis loses everything before a worker took the start
    message: the run is already running on the Celery executor in the database, so the
    beat's recovery hands out its batches."""
    import redis
    from celery import Celery

    from tests.processes import wait_for

    service, run_id = dispatched_with_no_wait(pg_url, redis_server.url, rows=50)
    redis.Redis.from_url(redis_server.url).flushall()  # the start message is lost
    run = service.get_run(run_id)
    assert (run.status, run.executor) == ("running", "celery")

    client = Celery("client", broker=redis_server.url)
    worker = start_worker(pg_url, redis_server.url, tmp_path)
    try:
        # What the beat's recover task does.
        dispatched = service.recover(lambda ids: [client.send_task("worker.tasks.run_batch", args=[i]) for i in ids])
        assert dispatched[run_id] > 0
        wait_for(lambda: service.get_run(run_id).status == "completed", timeout=60, message="the run")
    finally:
        worker.stop()
    assert touched(service.engine) == {i: 1 for i in range(1, 51)}
    service.engine.dispose()


def test_no_wait_at_a_gate_dispatches_and_exits_0_for_the_app_to_start(pg_url, redis_server):
    """What the Dockerfile runs before gunicorn: schema up to the first gate, its
    backfills handed to the workers, exit 0 (the app serves the expand schema); the
    next start applies the contract revisions once the workers are done."""
    upgrade(pg_url, FOUNDATION)
    engine = create_db_engine(pg_url)
    seed_shop(engine, orders=30)
    result = run_migrations(pg_url, "--batched", "--no-wait", CELERY_BROKER_URL=redis_server.url)
    assert result.returncode == 0, result.stderr
    assert "0006_orders_total_not_null waits for backfill orders_total_cents" in result.stdout
    assert current_revisions(pg_url) == ("0005_users_email_normalized",)
    # Not only the gate's backfill: every one its applied revisions scheduled (issue 21).
    expected = {"orders_total_cents", "translation_slugs", "users_email_normalized"}
    assert {name for name in expected if f"backfill {name} (run " in result.stdout} == expected, result.stdout
    assert result.stdout.count("dispatched to the workers") == 3
    assert {name: status for name, status in run_statuses(engine).items() if name in expected} == \
        dict.fromkeys(expected, "running")
    engine.dispose()


def test_no_wait_says_when_the_workers_continue_a_run_outside_its_window(pg_url, redis_server):
    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    window = closed_window_now()
    result = run_migrations(pg_url, "--batched", "--only", "test_touch", "--no-wait",
                            CELERY_BROKER_URL=redis_server.url, MAINTENANCE_WINDOWS=window)
    assert result.returncode == 0, result.stderr
    hour = window.split()[1][:5]
    assert re.search(rf"backfill test_touch \(run {run_id}\) dispatched to the workers; it waits outside its "
                     rf"maintenance windows \({window}\): the workers continue it at \d{{4}}-\d\d-\d\d {hour} UTC",
                     result.stdout), result.stdout
    service.engine.dispose()


def test_with_no_worker_batched_says_so_and_goes_on_when_one_starts(pg_url, redis_server, tmp_path):
    """End to end: a real broker nobody consumes. `--batched` says once that no worker
    takes the batches (after BACKFILL_STALL_SECONDS), naming the broker, keeps
    following, and finishes once a worker starts."""
    from tests.processes import wait_for

    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, 101))
    run_id = service.schedule("test_touch")
    output = tmp_path / "batched.out"
    with open(output, "w") as sink:
        batched = subprocess.Popen(
            [sys.executable, "run_migrations.py", "--batched", "--only", "test_touch"], cwd=ROOT, text=True,
            stdout=sink, stderr=subprocess.STDOUT,
            env=subprocess_env(DATABASE_URL=pg_url, BACKFILL_MODULES="tests.backfills_for_tests",
                               CELERY_BROKER_URL=redis_server.url, BACKFILL_STALL_SECONDS="1"))
    worker = None
    try:
        wait_for(lambda: "no worker has taken a batch" in output.read_text(), timeout=60,
                 message="the no-worker notice")
        assert batched.poll() is None  # still following
        assert set(touched(service.engine).values()) == {0}
        worker = start_worker(pg_url, redis_server.url, tmp_path)
        assert batched.wait(90) == 0, output.read_text()
    finally:
        if batched.poll() is None:
            batched.kill()
        if worker is not None:
            worker.stop()
    text = output.read_text()
    notice = [line for line in text.splitlines() if "no worker has taken a batch" in line]
    assert len(notice) == 1, text
    assert f"backfill test_touch (run {run_id}): no worker has taken a batch in 1 s: is `celery -A worker worker` " \
           f"running against {redis_server.url}?" in notice[0]
    assert "backfills completed on the Celery workers: test_touch" in text
    assert touched(service.engine) == {i: 1 for i in range(1, 101)}
    service.engine.dispose()
