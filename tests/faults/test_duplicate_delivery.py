"""Fault 2: the same batch task delivered twice at once, to two workers.

The test starts the run and carves its first batches itself (service.start and
advance, what worker.tasks.start_run does), then publishes worker.tasks.run_batch
for one batch twice, with the same task id, while two single-process workers wait:
each takes one copy. One effect: the rows are touched once and the batch's
attempt is counted once.
"""
from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa

from backend.backfill.model import RunStatus
from tests.faults.support import LEASE_SECONDS, assert_exactly_once, wait_until

IDS = list(range(1, 31))


def start_without_dispatch(stack, name: str, ids: list[int]) -> tuple[int, list[int]]:
    from tests.backfill_helpers import insert_rows

    insert_rows(stack.engine, ids)
    run_id = stack.service.schedule(name)
    assert stack.service.start(run_id, executor="celery").status == RunStatus.RUNNING
    return run_id, stack.service.advance(run_id)


def send_twice(stack, batch_id: int) -> str:
    task_id = str(uuid.uuid4())
    for _ in range(2):
        stack.client.send_task("worker.tasks.run_batch", args=[batch_id], task_id=task_id)
    return task_id


def receivers(workers, task_id: str) -> int:
    return sum(f"run_batch[{task_id}] received" in worker.log() for worker in workers)


def outcomes(workers, batch_id: int, kind: str) -> int:
    """The engine logs each batch outcome (backend.metrics.events.batch_outcome) as
    `batch <id> of run <run id>: <outcome kind> (<rows> rows)`."""
    line = re.compile(rf"batch {batch_id} of run \d+: {kind} ")
    return sum(len(line.findall(worker.log())) for worker in workers)


@pytest.mark.slow
@pytest.mark.parametrize("backfill", ["test_touch_slow", "test_touch_slow_rows"])  # set-based, per-row bulk
def test_same_batch_delivered_twice_at_once_has_one_effect(stack, backfill):
    workers = [stack.worker(), stack.worker()]
    run_id, (first, *others) = start_without_dispatch(stack, backfill, IDS)
    task_id = send_twice(stack, first)
    stack.dispatch(others)
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS)
    assert receivers(workers, task_id) == 2, stack.logs()  # both workers got a copy
    batch = stack.batch(first)
    assert batch.attempts == 1 and batch.rows_affected == 5, batch
    # The copy that found the batch leased retries when the lease expires: it must
    # find the batch done and change nothing.
    wait_until(lambda: outcomes(workers, first, "done"), 2 * LEASE_SECONDS + 5, "the duplicate to find the batch done",
               diagnostics=stack.logs)
    assert outcomes(workers, first, "succeeded") == 1
    assert_exactly_once(stack, run_id, IDS)


@pytest.mark.slow
def test_duplicate_claiming_after_the_lease_expired_waits_for_the_open_transaction(stack):
    """`fault_overrun` keeps its transaction open 4 s, longer than the 3 s lease. The
    second copy finds the batch leased, retries when the lease expires and may then
    claim it while the first holder is still inside its transaction: the batch row
    lock taken by the holder's first statement (batches.hold) must make its claim
    (batches.lock_batch) wait, then see the batch succeeded."""
    workers = [stack.worker(), stack.worker()]
    ids = list(range(1, 11))  # one batch
    run_id, (only,) = start_without_dispatch(stack, "fault_overrun", ids)
    task_id = send_twice(stack, only)
    blocked = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock'"
        " AND (query LIKE 'UPDATE backfill_batches%' OR query LIKE 'SELECT %FROM backfill_batches%FOR UPDATE')")
    seen_waiting = []

    def finished():
        with stack.engine.connect() as connection:
            if connection.execute(blocked, {"db": stack.database}).scalar():
                seen_waiting.append(True)
        return stack.run(run_id).status in RunStatus.FINISHED

    wait_until(finished, 45, "the run to finish", diagnostics=stack.logs)
    assert_exactly_once(stack, run_id, ids)
    assert receivers(workers, task_id) == 2, stack.logs()
    assert seen_waiting, "the second copy never claimed while the first transaction was open"
    assert stack.batch(only).attempts == 1
    assert outcomes(workers, only, "succeeded") == 1 and outcomes(workers, only, "done") == 1, stack.logs()
