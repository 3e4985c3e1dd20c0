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
from datetime import datetime, time, timedelta, timezone

import pytest
import sqlalchemy as sa

from backend.backfill.clock import as_utc
from backend.backfill.model import BatchStatus, RunStatus
from tests.faults.support import LEASE_SECONDS, assert_exactly_once, task_outcomes, wait_until

IDS = [i for i in range(10, 46) if i % 9]          # 32 rows with gaps: 7 batches of 5
OUTSIDE = [1, 2, 3, 500, 501]                         # added after the bounds are fixed


def kill_inside_batch(stack, candidates, *, whole_group=None, before_kill=lambda run_id: None):
    """Catch a batch transaction (its process stopped inside it), SIGKILL the process
    running it (or the whole worker `whole_group`), and prove that the transaction
    rolled back."""
    open_tx, owner = stack.freeze_inside_batch(candidates)
    run_id = stack.service.list_runs()[-1].id
    batch = stack.batch_claimed_by(run_id, owner)
    before_kill(run_id)
    if whole_group is not None:
        whole_group.kill()
    else:
        os.kill(owner, signal.SIGKILL)
    stack.wait_backend_gone(open_tx.backend_pid)
    after = stack.batch(batch.id)
    assert after.status == BatchStatus.RUNNING and after.claimed_by == batch.claimed_by, \
        f"the killed attempt committed after all: {after}"
    assert set(stack.rows_of(after).values()) == {0}, "the killed batch's UPDATE was not rolled back"
    return owner, batch


@pytest.mark.slow
@pytest.mark.parametrize("backfill", ["test_touch_slow", "test_touch_slow_rows"])  # set-based, per-row bulk
def test_pool_child_killed_mid_batch_is_redelivered_and_applied_once(stack, backfill):
    """Only the pool process running the batch dies: Celery's main process sees the
    lost worker and re-queues the message (acks_late + reject_on_worker_lost); the
    redelivered batch waits for the dead claim's lease, then runs once."""
    worker = stack.worker(concurrency=1)
    run_id = stack.start_run(backfill, IDS, outside=OUTSIDE)
    child, batch = kill_inside_batch(stack, worker.pool_children)
    assert child != worker.pid
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    retried = stack.batch(batch.id)
    assert retried.attempts >= 2 and f":{child}:" not in retried.claimed_by
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
    retried = stack.batch(batch.id)
    assert retried.attempts >= 2 and f":{owner}:" not in retried.claimed_by
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
        return next((b for b in stack.batches(run_id) if b.seq == 2), None)

    wait_until(lambda: stack.run(run_id).status in RunStatus.FINISHED
               or ((b := crashing_batch()) is not None and b.attempts > 2),
               45, "the run to fail or the crashing batch to start a third attempt", interval=0.1,
               diagnostics=stack.logs)
    batch, run = crashing_batch(), stack.run(run_id)
    assert batch.attempts <= 2, f"attempt {batch.attempts} of a batch allowed 2: {batch}"
    assert batch.status == BatchStatus.FAILED and batch.error
    assert run.status == RunStatus.FAILED and run.last_error
    assert set(stack.rows_of(batch).values()) == {0}


@pytest.mark.slow
def test_worker_killed_while_the_run_is_paused_then_resumed(stack):
    """Fault 8, the pause half: the run is paused while a batch is open on the worker, then the whole worker is
    killed. While paused nothing changes, even with a new worker and the beat's
    recovery passes running; resume() hands the batches out again and the run
    completes exactly once."""
    victim = stack.worker(concurrency=1)
    run_id = stack.start_run("test_touch_slow", IDS, outside=OUTSIDE)
    kill_inside_batch(stack, victim.pids, whole_group=victim, before_kill=lambda run_id: stack.service.pause(
        run_id, actor="fault-suite", reason="paused while a batch is open"))

    frozen = (stack.touched(), stack.batches(run_id), stack.run(run_id))
    assert frozen[2].status == RunStatus.PAUSED
    survivor = stack.worker(concurrency=1)
    stack.beat()
    # Two recovery passes after the dead claim's lease expired: they must leave a
    # paused run alone.
    expired = max(b.lease_expires_at for b in frozen[1] if b.lease_expires_at is not None)
    wait_until(lambda: _database_now(stack) > expired, 2 * LEASE_SECONDS, "the dead claim's lease to expire")
    passes = task_outcomes(survivor, "recover", "succeeded")
    wait_until(lambda: task_outcomes(survivor, "recover", "succeeded") >= passes + 2, 30,
               "two recovery passes", diagnostics=stack.logs)
    assert (stack.touched(), stack.batches(run_id), stack.run(run_id)) == frozen, "a paused run changed"

    stack.service.resume(run_id, actor="fault-suite", dispatch=stack.dispatch)
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    moves = [(t.from_status, t.to_status, t.actor) for t in stack.transitions(run_id)]
    assert ("running", "paused", "fault-suite") in moves and ("paused", "running", "fault-suite") in moves


@pytest.mark.slow
def test_workers_killed_as_the_window_closes_and_while_it_waits_then_it_opens(stack):
    """Fault 8, the maintenance-window half. `fault_windowed` may run 01:00-02:00 UTC;
    the workers' clock starts at 01:30 and is moved by the test. A batch is caught
    open (its pool process stopped inside the transaction) when the clock passes the
    window's end, and that process is killed: Celery redelivers the batch at once,
    its dead claim already expired, and it must not start outside the window. The
    run waits for tomorrow's window; its worker is killed while it waits, a new one
    and the beat's recovery passes change nothing. When the clock reaches the
    window, the run continues on its own and completes exactly once, and no batch
    ever started outside the window."""
    today = datetime.now(timezone.utc).date()
    tomorrow = today + timedelta(days=1)
    windows = [(datetime.combine(day, time(1, 0), timezone.utc), datetime.combine(day, time(2, 0), timezone.utc))
               for day in (today, tomorrow)]
    stack.set_worker_time(datetime.combine(today, time(1, 30), timezone.utc))
    first = stack.worker(concurrency=1)
    run_id = stack.start_run("fault_windowed", IDS, outside=OUTSIDE)
    stack.wait_run(run_id, lambda run: run.batches_done >= 1, "a first batch inside the window")

    open_tx, child = stack.freeze_inside_batch(first.pool_children)
    killed = stack.batch_claimed_by(run_id, child)
    stack.set_worker_time(datetime.combine(today, time(2, 30), timezone.utc))
    os.kill(child, signal.SIGKILL)
    stack.wait_backend_gone(open_tx.backend_pid)
    assert stack.batch(killed.id).status != BatchStatus.SUCCEEDED
    assert set(stack.rows_of(killed).values()) == {0}, "the killed batch's UPDATE was not rolled back"
    waiting = stack.wait_run(run_id, lambda run: run.status == RunStatus.WAITING,
                             "the run to wait for its next window", timeout=30)
    assert as_utc(waiting.next_window_at) == windows[1][0]
    assert "outside the maintenance windows" in waiting.wait_reason

    first.kill()  # killed while the run waits
    frozen = (stack.touched(), stack.batches(run_id), stack.run(run_id))
    second = stack.worker(concurrency=1)
    stack.beat()
    passes = task_outcomes(second, "recover", "succeeded")
    wait_until(lambda: task_outcomes(second, "recover", "succeeded") >= passes + 2, 30,
               "two recovery passes", diagnostics=stack.logs)
    assert (stack.touched(), stack.batches(run_id), stack.run(run_id)) == frozen, "a waiting run changed"

    stack.set_worker_time(windows[1][0] + timedelta(seconds=5))
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    batches = stack.batches(run_id)
    outside_windows = [b for b in batches
                       if not any(start <= as_utc(b.started_at) < end for start, end in windows)]
    assert not outside_windows, f"batches started outside the window: {outside_windows}"
    retried = stack.batch(killed.id)
    assert as_utc(retried.started_at) >= windows[1][0] and f":{child}:" not in retried.claimed_by
    moves = [(t.from_status, t.to_status, t.actor) for t in stack.transitions(run_id)]
    assert ("running", "waiting", "maintenance window") in moves and ("waiting", "running", "scheduler") in moves


def _database_now(stack):
    with stack.engine.connect() as connection:
        return connection.execute(sa.text("SELECT now()")).scalar()
