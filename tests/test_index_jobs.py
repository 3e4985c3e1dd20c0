"""Schema jobs (backend/backfill/schema_jobs.py, backend/migrations/index_jobs.py):
an index build or a constraint validation scheduled by a revision runs later, as a run
of one batch, only inside its maintenance window, one attempt at a time, retried after
a failure with no INVALID index left behind, pausable and cancellable between attempts,
with its build's progress in the API; a gate stops `alembic upgrade head` until it is
done, and `--batched` (in-process) or a Celery worker does it."""
from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend import create_app
from backend.backfill import runs, schema_job_progress, schema_jobs
from backend.backfill.clock import use_clock
from backend.backfill.model import RunStatus
from backend.backfill.outcome import Outcome
from backend.backfill.registry import load_catalog
from backend.backfill.service import BackfillService
from backend.backfill.settings import EngineSettings
from backend.cli.runs_table import runs_table
from backend.config import Config
from backend.db import create_db_engine
from backend.migrations import alembic_api
from backend.migrations.batched import BatchedOptions, migrate_batched
from backend.migrations.index_jobs import IndexNotBuilt
from tests.processes import CeleryWorker, RedisServer, subprocess_env, wait_for

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
HEAD = alembic_api.head_revisions()[0]
SETTINGS = EngineSettings(lease_seconds=3, retry_backoff_seconds=0.05, retry_backoff_max_seconds=0.2,
                          health_checks=())
SECRET = "s3cret-token-for-tests-0123456789abcdef"

SCHEDULE_REVISION = f'''"""test: schedule ix_items_a"""
from alembic import op
from backend.migrations.index_jobs import schedule_index, unschedule_index

revision = "9001_schedule_ix_items_a"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade():
    schedule_index("ix_items_a", "items", ["a"], revision=revision)


def downgrade():
    unschedule_index("ix_items_a", "items")
'''
REQUIRE_REVISION = '''"""test: require ix_items_a"""
from alembic import op
from backend.migrations.index_jobs import require_index

revision = "9002_require_ix_items_a"
down_revision = "9001_schedule_ix_items_a"
branch_labels = None
depends_on = None


def upgrade():
    require_index("ix_items_a", revision=revision)
    op.execute("CREATE TABLE after_the_gate (id integer)")


def downgrade():
    op.execute("DROP TABLE after_the_gate")
'''


# --- set-up ------------------------------------------------------------------------------

@pytest.fixture
def url(pg_url):
    alembic_api.upgrade(pg_url, HEAD)
    with create_db_engine(pg_url).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE items (id serial PRIMARY KEY, a integer)")
        connection.exec_driver_sql("INSERT INTO items (a) SELECT g FROM generate_series(1, 2000) g")
    return pg_url


@pytest.fixture
def service(url):
    service = BackfillService(create_db_engine(url), load_catalog(), SETTINGS)
    yield service
    service.engine.dispose()


@pytest.fixture
def test_revisions(tmp_path, monkeypatch):
    """Two revisions after the shipped head: one schedules ix_items_a, one requires it."""
    return use_revisions(tmp_path, monkeypatch, {"9001_schedule_ix_items_a.py": SCHEDULE_REVISION,
                                                 "9002_require_ix_items_a.py": REQUIRE_REVISION})


def use_revisions(tmp_path, monkeypatch, scripts: dict[str, str]) -> str:
    """Alembic (through alembic_api) sees `scripts` after the shipped revisions."""
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, text in scripts.items():
        (versions / name).write_text(text)
    locations = f"{REPO / 'alembic' / 'versions'}:{versions}"  # path_separator = os
    original = alembic_api.alembic_config

    def with_test_revisions(database_url, *, quiet=True):
        cfg = original(database_url, quiet=quiet)
        cfg.set_main_option("version_locations", locations)
        return cfg

    monkeypatch.setattr(alembic_api, "alembic_config", with_test_revisions)
    return locations


def schedule(service, name="ix_items_a", statement="CREATE INDEX CONCURRENTLY ix_items_a ON items (a)") -> int:
    with service.engine.begin() as connection:
        return schema_jobs.define(connection, schema_jobs.index_job_name(name), kind=schema_jobs.INDEX,
                                  table="items", target=name, statement=statement, scheduled_by="test")


def started_batch(service, run_id: int) -> int:
    service.start(run_id, executor="inprocess")
    [batch_id] = service.advance(run_id)
    return batch_id


def index_state(service, name="ix_items_a"):
    with service.engine.connect() as connection:
        return schema_jobs.index_state(connection, name)


def window(now: datetime, *, open_now: bool) -> str:
    start, end = (now - timedelta(hours=1), now + timedelta(hours=1)) if open_now else \
        (now + timedelta(hours=2), now + timedelta(hours=3))
    return f"daily {start:%H:%M}-{end:%H:%M}"


def config(url: str, windows: str) -> Config:
    return Config.from_env({"DATABASE_URL": url, "MAINTENANCE_WINDOWS": windows, "BACKFILL_HEALTH_CHECKS": "",
                            "BACKFILL_RETRY_BACKOFF_SECONDS": "0.05"})


class Display:
    def __init__(self):
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)

    def update(self, progress) -> None:
        pass

    def close(self) -> None:
        pass


# --- windows and the gate -----------------------------------------------------------------

def test_batched_builds_a_scheduled_index_only_inside_its_window(url, service):
    run_id = schedule(service)
    now = datetime.now(timezone.utc)

    spec = window(now, open_now=False)
    closed = migrate_batched(config(url, spec), BatchedOptions(no_wait=True), Display())
    assert closed.waiting == [run_id]
    run = service.get_run(run_id)
    assert run.status == RunStatus.WAITING and "outside the maintenance windows" in run.wait_reason
    assert index_state(service) is None

    assert service.get_run(run_id).next_window_at == now.replace(second=0, microsecond=0) + timedelta(hours=2)

    with use_clock(lambda: now + timedelta(hours=2, minutes=5)):  # the window has opened
        opened = migrate_batched(config(url, spec), BatchedOptions(no_wait=True), Display())
    assert [progress.run_id for progress in opened.finished] == [run_id]
    assert service.get_run(run_id).status == RunStatus.COMPLETED
    assert index_state(service) == "valid"


def test_the_gate_stops_alembic_until_batched_builds_the_index_and_the_downgrade_keeps_its_history(url, service,
                                                                                               test_revisions):
    with pytest.raises(IndexNotBuilt) as stopped:
        alembic_api.upgrade(url, "heads")
    message = str(stopped.value)
    assert message.startswith("revision 9002_require_ix_items_a requires schema job index:ix_items_a")
    assert "does not exist yet" in message and "python run_migrations.py --batched" in message
    assert alembic_api.current_revisions(url) == ("9001_schedule_ix_items_a",)

    display = Display()
    result = migrate_batched(config(url, ""), BatchedOptions(), display)
    assert result.at == ("9002_require_ix_items_a",)
    assert "9002_require_ix_items_a waits for schema job index:ix_items_a" in display.messages
    assert index_state(service) == "valid"
    [run] = service.list_runs(name="index:ix_items_a")
    assert run.status == RunStatus.COMPLETED and run.scheduled_by == "9001_schedule_ix_items_a"

    alembic_api.downgrade(url, HEAD)  # unschedule_index: the index is gone, the job's run stays as history
    assert index_state(service) is None
    assert [(r.id, r.status) for r in service.list_runs(name="index:ix_items_a")] == [(run.id, RunStatus.COMPLETED)]

    with pytest.raises(IndexNotBuilt):  # upgraded again: a fresh run, and the gate judges that one
        alembic_api.upgrade(url, "heads")
    migrate_batched(config(url, ""), BatchedOptions(), Display())
    assert index_state(service) == "valid"
    assert [r.status for r in service.list_runs(name="index:ix_items_a")] == [RunStatus.COMPLETED] * 2


def test_on_a_fresh_database_the_gate_builds_the_index_of_an_empty_table(pg_url, test_revisions):
    alembic_api.upgrade(pg_url, HEAD)
    engine = create_db_engine(pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE items (id serial PRIMARY KEY, a integer)")
    alembic_api.upgrade(pg_url, "heads")  # no --batched needed
    with engine.connect() as connection:
        assert schema_jobs.index_state(connection, "ix_items_a") == "valid"
        [run] = [run for run in runs.list_runs(connection, name="index:ix_items_a")]
        assert run.status == RunStatus.COMPLETED
        assert runs.transitions(connection, run.id)[-1].reason == "index ix_items_a: built by the gate: its table was empty"
    engine.dispose()


VALIDATION_REVISIONS = {
    "9101_validate_ck_items_a.py": f'''"""test: validate ck_items_a later"""
import sqlalchemy as sa
from alembic import op
from backend.migrations.index_jobs import schedule_validation, unschedule_validation

revision = "9101_validate_ck_items_a"
down_revision = "{HEAD}"


def upgrade():
    op.create_check_constraint("ck_items_a", "items", sa.text("a > 0"), postgresql_not_valid=True)
    schedule_validation("items", "ck_items_a", revision=revision)


def downgrade():
    unschedule_validation("items", "ck_items_a")
    op.drop_constraint("ck_items_a", "items", type_="check")
''',
    "9102_require_ck_items_a.py": '''"""test: require ck_items_a validated"""
from backend.migrations.index_jobs import require_validation

revision = "9102_require_ck_items_a"
down_revision = "9101_validate_ck_items_a"


def upgrade():
    require_validation("items", "ck_items_a", revision=revision)


def downgrade():
    pass
''',
}


@pytest.mark.parametrize("rows", [2000, 0])
def test_the_validation_gate_waits_for_its_job_unless_the_table_is_empty(pg_url, tmp_path, monkeypatch, rows):
    alembic_api.upgrade(pg_url, HEAD)
    engine = create_db_engine(pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE items (id serial PRIMARY KEY, a integer)")
        connection.exec_driver_sql(f"INSERT INTO items (a) SELECT g FROM generate_series(1, {rows}) g")
    use_revisions(tmp_path, monkeypatch, VALIDATION_REVISIONS)
    if rows:
        with pytest.raises(IndexNotBuilt, match="requires schema job validate:items.ck_items_a to be finished "
                                                 r"\(validate:items.ck_items_a: run \d+ is pending, constraint "
                                                 "ck_items_a on items is NOT VALID yet"):
            alembic_api.upgrade(pg_url, "heads")
        migrate_batched(config(pg_url, ""), BatchedOptions(), Display())
    else:
        alembic_api.upgrade(pg_url, "heads")  # a fresh database: validated by the gate
    assert alembic_api.current_revisions(pg_url) == ("9102_require_ck_items_a",)
    with engine.connect() as connection:
        assert schema_jobs.constraint_validated(connection, "items", "ck_items_a") is True
        assert [run.status for run in runs.list_runs(connection, name="validate:items.ck_items_a")] == ["completed"]
    engine.dispose()


def test_plain_alembic_stops_at_the_gate_with_one_line(url, test_revisions, tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text((REPO / "alembic.ini").read_text().replace(
        "script_location = %(here)s/alembic",
        f"script_location = {REPO / 'alembic'}\nversion_locations = {test_revisions}"))
    done = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "heads"], cwd=REPO,
                          env=subprocess_env(DATABASE_URL=url), capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    [line] = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert line.startswith("FAILED: revision 9002_require_ix_items_a requires schema job index:ix_items_a "
                           "to be finished (index:ix_items_a: run "), output
    assert line.endswith("Finish it with: python run_migrations.py --batched")


def test_sqlite_builds_the_index_in_the_revision_and_the_gate_passes(sqlite_url, test_revisions):
    engine = create_db_engine(sqlite_url)
    alembic_api.upgrade(sqlite_url, HEAD)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, a integer)")
    alembic_api.upgrade(sqlite_url, "heads")
    with engine.connect() as connection:
        assert "ix_items_a" in {index["name"] for index in sa.inspect(connection).get_indexes("items")}
        assert connection.exec_driver_sql(
            "SELECT count(*) FROM backfill_runs WHERE name LIKE 'index:%'").scalar_one() == 0
    engine.dispose()


def test_an_offline_script_builds_the_index_where_it_was_scheduled(pg_url, test_revisions):
    """`alembic upgrade --sql`: no job (the script has no engine to run it), the index
    built concurrently in place, between the revisions' transactions; no gate."""
    from alembic import command

    cfg = alembic_api.alembic_config(pg_url)
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, f"{HEAD}:heads", sql=True)
    script = cfg.output_buffer.getvalue()
    build = script.index("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_items_a ON items (a)")
    assert "INSERT INTO schema_jobs" not in script and "SET lock_timeout = '0ms'" in script[:build]
    assert script.rindex("COMMIT", 0, build) > script.rindex("BEGIN", 0, build)  # outside a transaction
    assert "CREATE TABLE after_the_gate" in script[build:]


# --- attempts: failures, retries, controls -----------------------------------------------

UNIQUE = "CREATE UNIQUE INDEX CONCURRENTLY ix_items_a ON items (a)"


def test_a_failed_build_leaves_no_invalid_index_and_is_retried(service):
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 1 WHERE id IN (1, 2)")  # a duplicate
    run_id = schedule(service, statement=UNIQUE)
    batch_id = started_batch(service, run_id)

    first = service.execute(batch_id)
    assert first.kind == Outcome.RETRY and "could not create unique index" in first.error
    assert first.retry_in > 0  # back-off
    assert index_state(service) is None  # the INVALID index it left was dropped
    assert "attempt 1" in service.get_run(run_id).last_error

    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 2 WHERE id = 2")
    second = service.execute(batch_id, advance=True)
    assert second.kind == Outcome.SUCCEEDED
    run = service.get_run(run_id)
    assert run.status == RunStatus.COMPLETED and run.batches_done == 1
    assert index_state(service) == "valid"


def test_a_build_failing_every_attempt_fails_its_run_until_an_operator_retries_it(url, service):
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 1 WHERE id IN (1, 2)")
    run_id = schedule(service, statement=UNIQUE)
    batch_id = started_batch(service, run_id)
    kinds = [service.execute(batch_id).kind for _ in range(3)]
    assert kinds == [Outcome.RETRY, Outcome.RETRY, Outcome.FAILED]
    run = service.get_run(run_id)
    assert run.status == RunStatus.FAILED and "could not create unique index" in run.last_error
    assert index_state(service) is None

    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 2 WHERE id = 2")
    service.retry_failed(run_id, actor="test")
    migrate_batched(config(url, ""), BatchedOptions(), Display())
    assert service.get_run(run_id).status == RunStatus.COMPLETED and index_state(service) == "valid"


def test_an_invalid_index_left_by_a_lost_build_is_dropped_and_built_again(service):
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 1 WHERE id IN (1, 2)")
    with service.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        with pytest.raises(sa.exc.IntegrityError):
            connection.exec_driver_sql(UNIQUE)  # by hand: leaves an INVALID index
    assert index_state(service) == "invalid"
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 2 WHERE id = 2")
    run_id = schedule(service, statement=UNIQUE)
    assert service.execute(started_batch(service, run_id)).kind == Outcome.SUCCEEDED
    assert index_state(service) == "valid"


def test_pause_and_cancel_take_effect_between_attempts(service):
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 1 WHERE id IN (1, 2)")
    run_id = schedule(service, statement=UNIQUE)
    batch_id = started_batch(service, run_id)
    assert service.execute(batch_id).kind == Outcome.RETRY

    service.pause(run_id, actor="test", reason="not tonight")
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE items SET a = 2 WHERE id = 2")
    assert service.execute(batch_id).kind == Outcome.NOT_RUNNABLE
    assert index_state(service) is None
    service.resume(run_id, actor="test")
    assert service.execute(batch_id).kind == Outcome.SUCCEEDED
    assert index_state(service) == "valid"

    other = schedule(service, name="ix_items_id_a", statement="CREATE INDEX CONCURRENTLY ix_items_id_a ON items (id, a)")
    other_batch = started_batch(service, other)
    service.cancel(other, actor="test", reason="not needed")
    assert service.execute(other_batch).kind == Outcome.NOT_RUNNABLE
    assert service.get_run(other).status == RunStatus.CANCELLED
    assert index_state(service, "ix_items_id_a") is None


def test_a_constraint_validation_runs_as_a_job(service):
    with service.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE items ADD CONSTRAINT ck_items_a CHECK (a > 0) NOT VALID")
        run_id = schema_jobs.define(connection, schema_jobs.validation_job_name("items", "ck_items_a"),
                                    kind=schema_jobs.VALIDATE, table="items", target="ck_items_a",
                                    statement="ALTER TABLE items VALIDATE CONSTRAINT ck_items_a", scheduled_by="t")
    assert service.execute(started_batch(service, run_id)).kind == Outcome.SUCCEEDED
    with service.engine.connect() as connection:
        assert schema_jobs.constraint_validated(connection, "items", "ck_items_a") is True


# --- progress while it builds ---------------------------------------------------------------

def test_the_api_shows_the_build_progress_while_it_runs(url, service):
    run_id = schedule(service)
    batch_id = started_batch(service, run_id)
    app = create_app(Config.from_env({"DATABASE_URL": url, "ADMIN_API_TOKEN": f"ops:{SECRET}"}))
    client = app.test_client()
    blocker = service.engine.connect()
    blocker.begin()
    blocker.exec_driver_sql("INSERT INTO items (a) VALUES (5)")  # the build waits for this writer
    outcome = {}
    builder = threading.Thread(target=lambda: outcome.setdefault("kind", service.execute(batch_id).kind))
    builder.start()
    try:
        def progress():
            body = client.get(f"/api/backfills/{run_id}", headers={"Authorization": f"Bearer {SECRET}"}).get_json()
            found = body["job"]["progress"]
            return found if found and found["phase"] != "initializing" else None

        seen = wait_for(progress, timeout=30, interval=0.05, message="the build's progress in the API")
        assert seen["phase"].startswith("waiting for writers")
        assert set(schema_job_progress.PROGRESS_COLUMNS) <= set(seen)
        body = client.get(f"/api/backfills/{run_id}", headers={"Authorization": f"Bearer {SECRET}"}).get_json()
        assert body["job"]["kind"] == "index" and body["job"]["target"] == "ix_items_a"
        assert body["status"] == RunStatus.RUNNING and body["batches_running"] == 1
        listed = client.get("/api/backfills", headers={"Authorization": f"Bearer {SECRET}"}).get_json()["items"]
        assert [run["job"]["progress"]["phase"] for run in listed if run["id"] == run_id] == [seen["phase"]]
        assert all(run["job"] is None for run in listed if run["id"] != run_id)  # backfills: null
        time.sleep(SETTINGS.lease_seconds + 0.5)  # longer than the lease: the attempt renews it
        assert service.batches_to_run(run_id) == []  # the recovery hands out no second attempt
        assert service.execute(batch_id).kind == Outcome.LEASED
        [line] = [line for line in runs_table(Config.from_env({"DATABASE_URL": url})) if "index:ix_items_a" in line]
        assert "running" in line and "building: waiting for writers before build" in line
    finally:
        blocker.commit()
        blocker.close()
        builder.join(60)
    assert outcome["kind"] == Outcome.SUCCEEDED
    with service.engine.connect() as connection:
        assert schema_job_progress.build_progress(connection, run_id) is None
    app.extensions["db_engine"].dispose()


# --- on the workers ----------------------------------------------------------------------------

def test_a_celery_worker_builds_a_scheduled_index(url, service, redis_available, tmp_path):
    from celery import Celery

    redis = RedisServer().start()
    run_id = schedule(service)
    worker = CeleryWorker(subprocess_env(DATABASE_URL=url, CELERY_BROKER_URL=redis.url, BACKFILL_LEASE_SECONDS="5",
                                         BACKFILL_HEALTH_CHECKS=""),
                          concurrency=1, log_path=tmp_path / "worker.log").start()
    try:
        Celery("client", broker=redis.url).send_task("worker.tasks.start_run", args=[run_id])
        final = wait_for(lambda: (run := service.get_run(run_id)).is_finished and run, timeout=90,
                         message="the job to finish")
    finally:
        worker.stop()
        redis.kill()
    assert final.status == RunStatus.COMPLETED, (tmp_path / "worker.log").read_text()[-3000:]
    assert final.executor == "celery"
    assert index_state(service) == "valid"


def test_a_dry_run_of_a_schema_job_is_refused_in_one_line(url, service):
    schedule(service)
    result = subprocess.run([sys.executable, "run_migrations.py", "--dry-run", "index:ix_items_a"], cwd=REPO,
                            env=subprocess_env(DATABASE_URL=url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: index:ix_items_a is a schema job: its statement runs outside any "
                                     "transaction, so a dry run could not roll it back (--status shows the "
                                     "statement and its progress)")
    assert index_state(service) is None  # nothing built
