"""Every failed attempt of a batch is kept (backfill_batch_errors): an exception, a
statement timeout that split it, a worker lost; recorded with the failure, shown by
`run_migrations.py --log` and the batches API, and absent (without harm) on a schema
from before 0013."""
from __future__ import annotations

from datetime import timedelta

import jsonschema
import pytest
import sqlalchemy as sa

from backend.backfill import batches as batch_writes
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.inprocess import run_in_process
from backend.backfill.model import BatchStatus, RunStatus
from backend.backfill.state import backfill_batch_errors, backfill_batches
from backend.config import Config
from backend.migrations.alembic_api import upgrade
from backend.web import create_app
from backend.web.backfills.openapi import openapi_document
from tests.backfill_helpers import create_touch_tables, insert_rows, make_service, poison, touch_service, touched
from tests.test_batched_cli import run_migrations

POISONED = "tests.backfills_for_tests.PoisonedBatch"
SECRET = "s3cret-token-for-tests-0123456789abcdef"


@pytest.fixture
def service(db_url):
    svc = touch_service(db_url)
    yield svc
    svc.engine.dispose()


def errors_by_seq(service, run_id):
    return {seq: [(e.attempt, e.error_class, e.message) for e in errs]
            for seq, errs in _grouped(service.batch_errors(run_id)).items()}


def _grouped(pairs):
    found = {}
    for seq, error in pairs:
        found.setdefault(seq, []).append(error)
    return found


def batch_of(service, run_id, seq):
    with service.engine.connect() as connection:
        return connection.execute(sa.select(backfill_batches).where(
            backfill_batches.c.run_id == run_id, backfill_batches.c.seq == seq)).mappings().one()


def test_each_failed_attempt_keeps_its_class_message_and_time(service):
    insert_rows(service.engine, range(1, 31))
    poison(service, 15)  # batch 2 (11..20) fails each of its 3 attempts
    run_id = service.schedule("test_touch")
    before = utcnow()
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.FAILED

    errors = errors_by_seq(service, run_id)
    assert list(errors) == [2]
    assert [(attempt, cls) for attempt, cls, _ in errors[2]] == [(1, POISONED), (2, POISONED), (3, POISONED)]
    assert all(message == "poisoned row in range" for _, _, message in errors[2])
    times = [as_utc(error.at) for _, error in service.batch_errors(run_id)]
    assert times == sorted(times) and all(at >= before - timedelta(seconds=1) for at in times)
    batch = batch_of(service, run_id, 2)
    assert (batch["status"], batch["attempts"]) == (BatchStatus.FAILED, 3)
    assert batch["error"] == f"{POISONED}: {errors[2][-1][2]}"  # the batch's `error` is the last attempt's


def test_an_attempt_taken_over_by_another_worker_logs_nothing(service):
    """record_failure's claim check: a worker whose claim was taken over records no
    failure, so its error is not kept either (the new holder's attempt counts)."""
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    batch_id = service.advance(run_id)[0]
    with service.engine.begin() as connection:
        connection.execute(sa.update(backfill_batches).where(backfill_batches.c.id == batch_id)
                           .values(status=BatchStatus.RUNNING, claimed_by="someone-else", attempts=1))
        assert not batch_writes.record_failure(connection, batch_id, "me", final=False, error="boom", now=utcnow(),
                                               attempt=batch_writes.AttemptError("RuntimeError", "boom"))
    assert service.batch_errors(run_id) == []


def _held_by_a_dead_worker(service, batch_id, *, attempts=1):
    with service.engine.begin() as connection:
        connection.execute(
            sa.update(backfill_batches).where(backfill_batches.c.id == batch_id)
            .values(status=BatchStatus.RUNNING, claimed_by="dead-worker:1", attempts=attempts,
                    lease_expires_at=utcnow() - timedelta(seconds=1)))


def test_a_lost_worker_is_logged_once_where_it_is_found(service):
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    first, second = service.advance(run_id)
    # Found by a claim over the expired lease: the batch then succeeds.
    _held_by_a_dead_worker(service, first)
    assert service.execute(first).kind == "succeeded"
    # Found by the recovery's release; the claim after it finds it pending: no second entry.
    _held_by_a_dead_worker(service, second)
    assert second in service.batches_to_run(run_id)
    assert second in service.batches_to_run(run_id)  # pending now: nothing more to release
    assert service.execute(second).kind == "succeeded"

    errors = errors_by_seq(service, run_id)
    assert sorted(errors) == [1, 2]
    for seq in (1, 2):
        [(attempt, cls, message)] = errors[seq]
        assert (attempt, cls) == (1, batch_writes.WORKER_LOST)
        assert "dead-worker:1" in message and "lease expired at" in message


def test_a_batch_out_of_attempts_logs_its_last_lost_worker(service):
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    [batch_id] = service.advance(run_id)
    _held_by_a_dead_worker(service, batch_id, attempts=3)  # max_attempts = 3
    assert service.execute(batch_id).kind == "failed"
    [(seq, error)] = service.batch_errors(run_id)
    assert (seq, error.attempt, error.error_class) == (1, 3, batch_writes.WORKER_LOST)


def test_a_statement_timeout_split_keeps_the_timeout(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's")
    from backend.backfill.settings import EngineSettings

    service = touch_service(db_url, EngineSettings(lease_seconds=2, retry_backoff_seconds=0.01))
    try:
        insert_rows(service.engine, range(1, 33))
        run_id = service.schedule("test_touch_pg_sleep")  # 16 rows = 1.6 s per batch, 1 s timeout
        assert run_in_process(service, run_id).status == RunStatus.COMPLETED
        errors = [error for _, error in service.batch_errors(run_id)]
        assert errors and all(e.error_class == "psycopg2.errors.QueryCanceled" for e in errors)
        assert all(e.message.startswith("split in two after a statement timeout") for e in errors)
        assert {e.attempt for e in errors} == {1}  # the halves start their attempts again
    finally:
        service.engine.dispose()


def test_the_log_and_the_batches_api_show_the_failed_attempts(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 21))
    poison(service, 5)
    run_id = service.schedule("test_touch")
    run_in_process(service, run_id, sleep=lambda s: None)

    log = run_migrations(sqlite_url, "--log", str(run_id))
    assert log.returncode == 0, log.stderr
    lines = log.stdout.splitlines()
    attempts = lines[lines.index("failed attempts:") + 1:]
    assert len(attempts) == 3
    assert [line.split("  ", 2)[2].split(":", 1)[0] for line in attempts] == [
        "batch 1 attempt 1", "batch 1 attempt 2", "batch 1 attempt 3"]
    assert all(line.endswith(f"{POISONED}: poisoned row in range") for line in attempts)

    app = create_app(Config.from_env({"DATABASE_URL": sqlite_url, "BACKFILL_MODULES": "tests.backfills_for_tests",
                                      "ADMIN_API_TOKEN": f"ops:{SECRET}"}))
    page = app.test_client().get(f"/api/backfills/{run_id}/batches",
                                 headers={"Authorization": f"Bearer {SECRET}"}).json
    document = openapi_document()
    jsonschema.validate(page, {"$ref": "#/components/schemas/BatchPage", "components": document["components"]})
    by_seq = {item["seq"]: item["errors"] for item in page["items"]}
    assert [e["attempt"] for e in by_seq[1]] == [1, 2, 3] and by_seq[2] == []
    assert by_seq[1][0]["error_class"] == POISONED and by_seq[1][0]["at"].endswith("Z")
    app.extensions["db_engine"].dispose()
    service.engine.dispose()


def test_on_a_schema_before_0013_batches_fail_and_retry_as_before(db_url):
    """--batched runs backfills before later revisions are applied: no error log yet,
    the engine works all the same (the batch's `error` says the last one)."""
    upgrade(db_url, "0012_prices_bigint_cleanup")
    service = make_service(db_url)
    try:
        create_touch_tables(service.engine)
        assert not sa.inspect(service.engine).has_table("backfill_batch_errors")
        insert_rows(service.engine, range(1, 21))
        poison(service, 15)
        run_id = service.schedule("test_touch")
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.FAILED
        assert touched(service.engine)[1] == 1 and touched(service.engine)[15] == 0
        assert "poisoned row in range" in batch_of(service, run_id, 2)["error"]
        assert service.batch_errors(run_id) == []
        assert [t.to_status for t in service.transitions(run_id)] == ["pending", "running", "failed"]

        upgrade(db_url, "head")  # the table comes; the runs and their log stay
        with service.engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(backfill_batch_errors)).scalar() == 0
    finally:
        service.engine.dispose()
