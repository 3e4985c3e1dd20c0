"""Fault 1: a worker SIGKILLed while a batch transaction is open.

The batch under test is the slow test backfill (`test_touch_slow`: its UPDATE, then
0.3 s asleep inside the transaction). The test waits until a worker session is
inside that transaction (pg_stat_activity: a transaction id, the batch's last query),
maps the session's client port to the worker process that owns it (/proc), stops
that process with SIGSTOP, checks its transaction is still open, and kills it.
"""
from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa

from backend.backfill.state import BatchStatus, RunStatus
from tests.faults.support import LEASE_SECONDS, assert_exactly_once, task_outcomes, wait_until

IDS = [i for i in range(10, 46) if i % 9]          # 32 rows with gaps: 7 batches of 5
OUTSIDE = [1, 2, 3, 500, 501]                         # added after the bounds are fixed


def kill_inside_batch(stack, candidates, *, whole_group=None, before_kill=lambda run_id: None):
    """Catch a batch transaction (its process stopped inside it), SIGKILL the process
    running it (or the whole worker `whole_group`), and prove that the transaction
    rolled back."""
    open_tx, owner = stack.freeze_inside_batch(candidates)
    run_id = stack.service.list_runs()[-1]["id"]
    batch = stack.batch_claimed_by(run_id, owner)
    before_kill(run_id)
    if whole_group is not None:
        whole_group.kill()
    else:
        os.kill(owner, signal.SIGKILL)
    stack.wait_backend_gone(open_tx.backend_pid)
    after = stack.batch(batch["id"])
    assert after["status"] == BatchStatus.RUNNING and after["claimed_by"] == batch["claimed_by"], \
        f"the killed attempt committed after all: {after}"
    assert set(stack.rows_of(after).values()) == {0}, "the killed batch's UPDATE was not rolled back"
    return owner, batch


@pytest.mark.slow
def test_pool_child_killed_mid_batch_is_redelivered_and_applied_once(stack):
    """Only the pool process running the batch dies: Celery's main process sees the
    lost worker and re-queues the message (acks_late + reject_on_worker_lost); the
    redelivered batch waits for the dead claim's lease, then runs once."""
    worker = stack.worker(concurrency=1)
    run_id = stack.start_run("test_touch_slow", IDS, outside=OUTSIDE)
    child, batch = kill_inside_batch(stack, worker.pool_children)
    assert child != worker.pid
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    retried = stack.batch(batch["id"])
    assert retried["attempts"] >= 2 and f":{child}:" not in retried["claimed_by"]
    assert "WorkerLostError" in worker.log() or "exited with 'signal 9" in worker.log(), worker.log()[-3000:]


@pytest.mark.slow
def test_whole_worker_killed_mid_batch_is_redispatched_by_the_beat(stack):
    """The whole worker (main process and pool) dies with a batch open: its message
    is stuck unacknowledged in Redis (visibility timeout 1 h), so only the beat's
    recovery can hand the batch out again, once its lease expired, to the survivor."""
    victim = stack.worker(concurrency=1)
    survivor = stack.worker(concurrency=1)
    stack.beat()
    run_id = stack.start_run("test_touch_slow", IDS, outside=OUTSIDE)
    owner, batch = kill_inside_batch(stack, victim.pids, whole_group=victim)
    assert not victim.pids() and survivor.process.poll() is None
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    retried = stack.batch(batch["id"])
    assert retried["attempts"] >= 2 and f":{owner}:" not in retried["claimed_by"]
    assert "recovery re-dispatched batches" in survivor.log()


@pytest.mark.slow
def test_batch_that_kills_its_worker_every_time_reaches_its_attempt_limit(stack):
    """runner.py: 'Attempts are counted in a separate short transaction first, so
    that a batch that kills its worker every time still reaches its attempt limit.'
    `fault_crash` SIGKILLs its pool process inside the transaction whenever its range
    holds a row of fault_crash_rows; max_attempts = 2. Expected: once 2 attempts are
    used, the batch and the run are failed with an error saying so. The claim that
    would start attempt 3 is the proof that the limit is not enforced."""
    ids = list(range(1, 31))
    with stack.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO fault_crash_rows (id) VALUES (15)")
    stack.worker(concurrency=1)
    run_id = stack.start_run("fault_crash", ids)

    def crashing_batch():
        return next((b for b in stack.batches(run_id) if b["seq"] == 2), None)

    wait_until(lambda: stack.run(run_id)["status"] in RunStatus.FINISHED
               or ((b := crashing_batch()) is not None and b["attempts"] > 2),
               45, "the run to fail or the crashing batch to start a third attempt", interval=0.1,
               diagnostics=stack.logs)
    batch, run = crashing_batch(), stack.run(run_id)
    assert batch["attempts"] <= 2, f"attempt {batch['attempts']} of a batch allowed 2: {batch}"
    assert batch["status"] == BatchStatus.FAILED and batch["error"]
    assert run["status"] == RunStatus.FAILED and run["last_error"]
    assert set(stack.rows_of(batch).values()) == {0}


@pytest.mark.slow
def test_worker_killed_while_the_run_is_paused_then_resumed(stack):
    """Fault 8, the pause half (the maintenance-window half comes with the windows):
    the run is paused while a batch is open on the worker, then the whole worker is
    killed. While paused nothing changes, even with a new worker and the beat's
    recovery passes running; resume() hands the batches out again and the run
    completes exactly once."""
    victim = stack.worker(concurrency=1)
    run_id = stack.start_run("test_touch_slow", IDS, outside=OUTSIDE)
    kill_inside_batch(stack, victim.pids, whole_group=victim, before_kill=lambda run_id: stack.service.pause(
        run_id, actor="fault-suite", reason="paused while a batch is open"))

    frozen = (stack.touched(), stack.batches(run_id), stack.run(run_id))
    assert frozen[2]["status"] == RunStatus.PAUSED
    survivor = stack.worker(concurrency=1)
    stack.beat()
    # Two recovery passes after the dead claim's lease expired: they must leave a
    # paused run alone.
    expired = max(b["lease_expires_at"] for b in frozen[1] if b["lease_expires_at"] is not None)
    wait_until(lambda: _database_now(stack) > expired, 2 * LEASE_SECONDS, "the dead claim's lease to expire")
    passes = task_outcomes(survivor, "recover", "succeeded")
    wait_until(lambda: task_outcomes(survivor, "recover", "succeeded") >= passes + 2, 30,
               "two recovery passes", diagnostics=stack.logs)
    assert (stack.touched(), stack.batches(run_id), stack.run(run_id)) == frozen, "a paused run changed"

    stack.service.resume(run_id, actor="fault-suite", dispatch=stack.dispatch)
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    moves = [(t["from_status"], t["to_status"], t["actor"]) for t in stack.transitions(run_id)]
    assert ("running", "paused", "fault-suite") in moves and ("paused", "running", "fault-suite") in moves


def _database_now(stack):
    with stack.engine.connect() as connection:
        return connection.execute(sa.text("SELECT now()")).scalar()
