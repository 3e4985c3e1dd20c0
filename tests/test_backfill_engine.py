"""The engine on SQLite and a real PostgreSQL database: batching, the one-transaction
invariant, retries, and the status machine."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from backend.backfill.clock import utcnow
from backend.backfill.inprocess import run_in_process
from backend.backfill.keys import KeyRange
from backend.backfill import runs
from backend.backfill.model import Batch, BatchStatus, IllegalTransition, RunStatus
from backend.backfill.state import backfill_batches, backfill_runs
from tests.backfill_helpers import insert_rows, poison, touch_service, touched


@pytest.fixture
def service(db_url):
    svc = touch_service(db_url)
    yield svc
    svc.engine.dispose()


def started(service, ids, *, executor, poisoned=(), name="test_touch"):
    """A started test_touch run over rows `ids` (raising on `poisoned`): (run id, its first batches)."""
    insert_rows(service.engine, ids)
    poison(service, *poisoned)
    run_id = service.schedule(name)
    service.start(run_id, executor=executor)
    return run_id, service.advance(run_id)


def run(service, name="test_touch"):
    run_id = service.schedule(name)
    progress = run_in_process(service, run_id, sleep=lambda s: None)
    return run_id, progress


def batches(service, run_id):
    with service.engine.connect() as connection:
        return [Batch.from_row(row) for row in connection.execute(
            sa.select(backfill_batches).where(backfill_batches.c.run_id == run_id).order_by(backfill_batches.c.seq)
        ).mappings()]


@pytest.mark.parametrize("ids", [
    list(range(1, 31)),                       # exactly 3 x batch_size
    [1],                                      # one row
    [3, 4, 50, 51, 52, 1000, 1001, 5000, 99999, 100000, 100001, 7, 8],  # gaps
    list(range(1, 24)),                       # not a multiple
])
@pytest.mark.parametrize("name", ["test_touch", "test_touch_rows"])  # set-based, per-row in bulk
def test_every_row_in_range_is_touched_exactly_once(service, ids, name):
    insert_rows(service.engine, ids)
    run_id, progress = run(service, name)
    assert progress.status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in ids}
    assert progress.rows_done == len(ids) and progress.rows_scanned == len(ids)
    got = batches(service, run_id)
    assert len(got) == -(-len(ids) // 10)
    assert all(b.status == BatchStatus.SUCCEEDED for b in got)
    assert sum(b.rows_affected for b in got) == len(ids)
    assert progress.batches_done == len(got)


def test_empty_table_completes_at_once(service):
    run_id, progress = run(service)
    assert progress.status == RunStatus.COMPLETED
    assert progress.rows_total == 0 and batches(service, run_id) == []


def test_ranges_tile_the_key_space_without_offset(service):
    insert_rows(service.engine, range(1, 26))
    run_id, _ = run(service)
    got = batches(service, run_id)
    assert [(b.key_after, b.key_end, b.rows_in_range) for b in got] == [
        (None, "10", 10), ("10", "20", 10), ("20", "25", 5)]


def test_a_key_space_of_whole_batches_ends_without_an_empty_one(service):
    insert_rows(service.engine, [3, 5, *range(10, 28)])  # 20 keys with gaps, batch size 10
    run_id, progress = run(service)
    got = batches(service, run_id)
    assert [(b.key_after, b.key_end, b.rows_in_range) for b in got] == [(None, "17", 10), ("17", "27", 10)]
    assert progress.status == RunStatus.COMPLETED


def test_duplicate_delivery_applies_once(service):
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    [batch_id] = service.advance(run_id)[:1]
    assert service.execute(batch_id).kind == "succeeded"
    assert service.execute(batch_id).kind == "done"
    assert touched(service.engine) == {i: 1 for i in range(1, 11)}


def test_concurrent_duplicate_deliveries_apply_once(service):
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch_slow")
    service.start(run_id, executor="celery")
    batch_id = service.advance(run_id)[0]
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(service.execute(batch_id).kind)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) in (["done", "succeeded"], ["leased", "succeeded"])
    assert [v for k, v in touched(service.engine).items() if k <= 5] == [1] * 5


@pytest.mark.parametrize("name", ["test_touch", "test_touch_rows"])
def test_failure_after_the_change_rolls_back_and_the_retry_applies_once(service, name):
    run_id, (first, second) = started(service, range(1, 21), executor="inprocess", poisoned=[15], name=name)
    assert service.execute(first).kind == "succeeded"
    outcome = service.execute(second)
    assert outcome.kind == "retry" and "poisoned" in outcome.error
    assert touched(service.engine)[15] == 0  # the UPDATE before the raise rolled back
    with service.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM touch_poison")
    assert service.execute(second).kind == "succeeded"
    assert touched(service.engine) == {i: 1 for i in range(1, 21)}
    [b1, b2] = batches(service, run_id)
    assert b2.attempts == 2 and b2.error is None


def test_a_success_carves_its_successors_in_its_own_transaction(service):
    """What a Celery worker does (execute with advance=True): the next batch is carved
    when the one before it commits, and the last one completes the run."""
    run_id, (first, second) = started(service, range(1, 31), executor="celery")  # batches of 10, 2 in flight
    outcome = service.execute(first, advance=True)
    assert outcome.kind == "succeeded" and len(outcome.next_batch_ids) == 1
    [third] = outcome.next_batch_ids
    assert [(b.id, b.key_after, b.status) for b in batches(service, run_id)] == [
        (first, None, BatchStatus.SUCCEEDED), (second, "10", BatchStatus.PENDING), (third, "20", BatchStatus.PENDING)]
    assert service.execute(second, advance=True).next_batch_ids == ()  # nothing left to carve
    assert service.get_run(run_id).status == RunStatus.RUNNING      # the third is in flight
    assert service.execute(third, advance=True).next_batch_ids == ()
    assert service.get_run(run_id).status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in range(1, 31)}


def test_carving_after_a_success_does_not_wait_for_another_batch_transaction(pg_url):
    """A batch transaction's second update of its own batch row holds the KEY SHARE
    lock of the foreign key check on the run; the run's row lock must not wait for it.
    (With FOR UPDATE it did: that batch, next updating the run, deadlocked with us.)"""
    service = touch_service(pg_url)
    try:
        run_id, (other, _) = started(service, range(1, 31), executor="celery")
        with service.engine.connect() as theirs, service.engine.connect() as ours:
            theirs.begin()
            for token in ("hold", "record"):
                theirs.execute(sa.update(backfill_batches).where(backfill_batches.c.id == other)
                               .values(claimed_by=token))
            ours.begin()
            ours.execute(sa.update(backfill_runs).where(backfill_runs.c.id == run_id).values(updated_at=utcnow()))
            ours.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            assert runs.lock_run(ours, run_id).id == run_id  # no LockNotAvailable
            ours.rollback()
            theirs.rollback()
    finally:
        service.engine.dispose()


def test_a_failed_batch_carves_nothing(service):
    """The carve is in the batch's transaction: the rollback takes it back with the change."""
    run_id, (first, _) = started(service, range(1, 31), executor="celery", poisoned=[5])
    outcome = service.execute(first, advance=True)
    assert outcome.kind == "retry" and outcome.next_batch_ids is None
    assert len(batches(service, run_id)) == 2 and service.get_run(run_id).cursor == "20"


def test_a_batch_failing_every_attempt_fails_the_run_with_its_error(service):
    insert_rows(service.engine, range(1, 21))
    poison(service, 3)
    run_id, progress = run(service)
    assert progress.status == RunStatus.FAILED
    assert "poisoned" in progress.last_error and progress.batches_failed == 1
    failed = [b for b in batches(service, run_id) if b.status == BatchStatus.FAILED]
    assert len(failed) == 1 and failed[0].attempts == 3
    assert touched(service.engine)[3] == 0
    # Fix the row, retry: the run completes and every row is touched once.
    with service.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM touch_poison")
    service.retry_failed(run_id)
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in range(1, 21)}


def test_the_engine_core_imports_no_flask():
    import subprocess
    import sys

    code = ("import sys, backend.backfill.service, backend.backfill.inprocess, backend.migrations.backfill_ops, "
            "backend.shipped_backfills, worker.tasks; print('flask' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_rows_inserted_after_the_start_are_outside_the_bounds(service):
    insert_rows(service.engine, range(1, 16))
    run_id = service.schedule("test_touch")
    started = service.start(run_id, executor="inprocess")
    assert (started.key_min, started.key_max) == ("1", "15")
    insert_rows(service.engine, range(16, 31))
    progress = run_in_process(service, run_id, sleep=lambda s: None)
    assert progress.status == RunStatus.COMPLETED
    counts = touched(service.engine)
    assert all(counts[i] == 1 for i in range(1, 16)) and all(counts[i] == 0 for i in range(16, 31))


def test_string_keys(service):
    codes = ["b", "a", "ä", "z9", "z10", "M", "m", "0", "é", "x-1", "x_1"]
    with service.engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO touch_str (code) VALUES (:c)"), [{"c": c} for c in codes])
    run_id, progress = run(service, "test_touch_str")
    assert progress.status == RunStatus.COMPLETED
    assert touched(service.engine, "touch_str", "code") == {c: 1 for c in codes}
    assert len(batches(service, run_id)) == 3


def test_uuid_keys(service):
    from tests.backfills_for_tests import touch_uuid

    keys = [uuid.uuid4() for _ in range(10)]
    with service.engine.begin() as connection:
        connection.execute(sa.insert(touch_uuid), [{"id": k, "touched": 0} for k in keys])
    _, progress = run(service, "test_touch_uuid")
    assert progress.status == RunStatus.COMPLETED and progress.rows_done == 10
    with service.engine.connect() as connection:
        assert connection.execute(sa.select(touch_uuid.c.touched)).scalars().all() == [1] * 10


def test_illegal_transitions_are_refused(service):
    insert_rows(service.engine, range(1, 5))
    run_id, progress = run(service)
    assert progress.status == RunStatus.COMPLETED
    with pytest.raises(IllegalTransition, match="completed; it cannot become running"):
        service.transition(run_id, RunStatus.RUNNING)
    pending = service.schedule("test_touch")
    with pytest.raises(IllegalTransition):
        service.transition(pending, RunStatus.WAITING)
    assert service.get_run(pending).status == RunStatus.PENDING


def test_paused_run_executes_no_batch(service):
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    batch_id = service.advance(run_id)[0]
    service.transition(run_id, RunStatus.PAUSED)
    assert service.execute(batch_id).kind == "not_runnable"
    assert set(touched(service.engine).values()) == {0}
    service.transition(run_id, RunStatus.RUNNING)
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    assert set(touched(service.engine).values()) == {1}


def _claimed_by_a_dead_worker(service, batch_id, *, expires_in: float) -> None:
    with service.engine.begin() as connection:
        connection.execute(
            sa.update(backfill_batches).where(backfill_batches.c.id == batch_id)
            .values(status=BatchStatus.RUNNING, claimed_by="dead-worker", attempts=1,
                    lease_expires_at=utcnow() + timedelta(seconds=expires_in))
        )


def test_a_live_lease_is_respected_and_an_expired_one_taken_over(service):
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    batch_id = service.advance(run_id)[0]
    _claimed_by_a_dead_worker(service, batch_id, expires_in=60)
    outcome = service.execute(batch_id)
    assert outcome.kind == "leased" and 55 < outcome.retry_in <= 60.1
    assert set(touched(service.engine).values()) == {0}
    _claimed_by_a_dead_worker(service, batch_id, expires_in=-1)
    assert service.execute(batch_id).kind == "succeeded"
    assert touched(service.engine) == {i: 1 for i in range(1, 11)}
    assert batches(service, run_id)[0].attempts == 2


def test_recovery_redispatches_expired_and_stale_batches(service):
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    first, second = service.advance(run_id)  # max_parallel = 2; both "lost" in the broker
    _claimed_by_a_dead_worker(service, first, expires_in=-1)
    with service.engine.begin() as connection:
        connection.execute(sa.update(backfill_batches).where(backfill_batches.c.id == second)
                           .values(dispatched_at=utcnow() - timedelta(minutes=5)))
    sent = []
    assert service.recover(sent.extend) == {run_id: 2}
    assert sorted(sent) == sorted([first, second])
    for batch_id in sent:
        assert service.execute(batch_id).kind == "succeeded"
    sent.clear()
    service.recover(sent.extend)  # nobody advanced the run after those batches
    assert len(sent) == 1


def test_key_range_clause_is_half_open_after_the_first_batch():
    column = sa.column("id", sa.Integer)
    assert str(KeyRange(after=10, end=20).clause(column).compile(compile_kwargs={"literal_binds": True})) == \
        "id > 10 AND id <= 20"
    assert str(KeyRange(after=None, end=20, start=1).clause(column).compile(compile_kwargs={"literal_binds": True})) == \
        "id >= 1 AND id <= 20"


def test_controls_are_logged_with_who_and_why(service):
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    with pytest.raises(IllegalTransition, match="pending; it cannot become paused"):
        service.pause(run_id, actor="cli:alice")
    service.start(run_id, executor="inprocess")
    service.pause(run_id, actor="cli:alice", reason="peak traffic")
    service.resume(run_id, actor="api:ops-token")
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    with pytest.raises(IllegalTransition):
        service.cancel(run_id, actor="cli:alice")
    log = [(t.from_status, t.to_status, t.actor, t.reason) for t in service.transitions(run_id)]
    assert log == [
        (None, "pending", "engine", "scheduled"),
        ("pending", "running", "executor inprocess", "started"),
        ("running", "paused", "cli:alice", "peak traffic"),
        ("paused", "running", "api:ops-token", "resumed"),
        ("running", "completed", "engine", "every batch succeeded"),
    ]


def test_cancel_stops_a_run_for_good(service):
    insert_rows(service.engine, range(1, 41))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    first = service.advance(run_id)[0]
    assert service.execute(first).kind == "succeeded"
    service.cancel(run_id, actor="cli:bob")
    assert service.advance(run_id) == []
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.CANCELLED
    assert sum(touched(service.engine).values()) == 10
    with pytest.raises(IllegalTransition, match="cancelled; it cannot become running"):
        service.resume(run_id, actor="cli:bob")
