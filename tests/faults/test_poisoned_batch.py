"""Fault 9: a batch that always fails (a poisoned row), through a real worker.

`test_touch` raises after its UPDATE when its range holds a row listed in
touch_poison, so each attempt's change must roll back. The batch is retried up to
its max_attempts (3) with back-off, then the batch and the run are failed with the
error kept. The operator fixes the row and calls service.retry_failed with a
dispatch that publishes worker.tasks.run_batch through a Celery client, as the
HTTP API or a shell would: the run completes with every row exactly once.
"""
from __future__ import annotations

import pytest

from backend.backfill.model import BatchStatus, RunStatus
from tests.faults.support import assert_exactly_once, wait_until

IDS = list(range(1, 101))  # 10 batches of 10
POISONED = 45              # in batch 5
OUTSIDE = [2000]


@pytest.mark.slow
def test_poisoned_batch_fails_the_run_then_retry_completes_it_exactly_once(stack):
    with stack.engine.begin() as connection:
        connection.exec_driver_sql(f"INSERT INTO touch_poison (id) VALUES ({POISONED})")
    stack.worker(concurrency=2)
    run_id = stack.start_run("test_touch", IDS, outside=OUTSIDE)
    stack.wait_finished(run_id)
    # A batch in flight when the run failed still finishes (batches are never cut).
    wait_until(lambda: BatchStatus.RUNNING not in {b.status for b in stack.batches(run_id)}, 10,
               "the batches in flight to settle")
    failed = stack.run(run_id)

    assert failed.status == RunStatus.FAILED, failed
    poisoned = next(b for b in stack.batches(run_id) if int(b.key_after or 0) < POISONED <= int(b.key_end))
    assert poisoned.status == BatchStatus.FAILED and poisoned.attempts == 3, poisoned
    assert "PoisonedBatch: poisoned row in range" in poisoned.error
    assert failed.last_error.startswith(f"batch {poisoned.seq} failed after 3 attempts: ")
    assert "poisoned row in range" in failed.last_error and failed.batches_failed == 1
    data = stack.touched()
    assert set(stack.rows_of(poisoned).values()) == {0}, "a failed attempt's UPDATE was not rolled back"
    assert set(data.values()) <= {0, 1}, "a row was touched twice"
    assert failed.rows_done == sum(data.values())  # the counters agree with the data so far
    assert stack.transitions(run_id)[-1].to_status == RunStatus.FAILED

    with stack.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM touch_poison")
    retried = stack.service.retry_failed(run_id, actor="fault-suite", dispatch=stack.dispatch)
    assert retried.status == RunStatus.RUNNING and retried.last_error is None
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    again = stack.batch(poisoned.id)
    assert again.attempts == 1 and again.error is None  # fresh attempts after the retry
    moves = [(t.from_status, t.to_status, t.actor) for t in stack.transitions(run_id)]
    assert ("failed", "running", "fault-suite") in moves and moves[-1][1] == RunStatus.COMPLETED
