"""Faults of the in-process executor running lanes (`run_migrations.py --batched
--in-process`, BACKFILL_INPROCESS_LANES=2, the slow test backfill with 2 batches in
flight): a lane's session terminated mid-batch, and the whole process interrupted
(SIGINT, SIGTERM) mid-run, then a second `--batched` finishing the run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from backend.backfill.model import BatchStatus
from tests.faults.support import assert_exactly_once, wait_until
from tests.processes import ROOT

IDS = list(range(1, 201))  # 40 batches of 5, 0.3 s asleep in each: still running when the signal comes
OUTSIDE = [900, 901]


def batched(stack, log_name: str) -> subprocess.Popen:
    """`run_migrations.py --batched --in-process` over test_touch_slow, two lanes."""
    log = open(stack.directory / log_name, "ab")
    return subprocess.Popen(
        [sys.executable, "run_migrations.py", "--batched", "--in-process", "--only", "test_touch_slow"],
        cwd=ROOT, env=stack.env(BACKFILL_INPROCESS_LANES="2"), stdout=log, stderr=subprocess.STDOUT,
        # pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across
        # exec: Python would then never raise KeyboardInterrupt, as in a terminal it does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def scheduled(stack) -> int:
    from tests.backfill_helpers import insert_rows

    insert_rows(stack.engine, IDS)
    return stack.service.schedule("test_touch_slow")


def running_batches(stack, run_id: int) -> int:
    return sum(1 for b in stack.batches(run_id) if b.status == BatchStatus.RUNNING)


def log_text(stack, name: str) -> str:
    path = stack.directory / name
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.mark.slow
def test_a_lanes_connection_terminated_mid_batch_the_run_completes_exactly_once(stack):
    run_id = scheduled(stack)
    process = batched(stack, "batched.log")
    try:
        wait_until(lambda: running_batches(stack, run_id) == 2, 30, "two lanes inside batches",
                   diagnostics=lambda: log_text(stack, "batched.log"))
        insert_rows_outside(stack, run_id)
        open_tx, owner = stack.freeze_inside_batch(lambda: [process.pid])  # both lanes stopped
        try:
            frozen = [b.id for b in stack.batches(run_id) if b.status == BatchStatus.RUNNING]
            with stack.engine.connect() as connection:
                assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                          {"pid": open_tx.backend_pid}).scalar()
            stack.wait_backend_gone(open_tx.backend_pid)
        finally:
            os.kill(owner, signal.SIGCONT)  # one lane wakes up in a transaction whose session is gone
        assert process.wait(60) == 0, log_text(stack, "batched.log")
    finally:
        if process.poll() is None:
            process.kill()
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    assert max(b.attempts for b in stack.batches(run_id)) == 2  # the terminated attempt, then the one that committed
    assert 2 in [stack.batch(batch_id).attempts for batch_id in frozen]  # the lane whose session was cut
    assert "connection" in (stack.run(run_id).last_error or ""), stack.run(run_id)


def insert_rows_outside(stack, run_id: int) -> None:
    """Rows added once the run's bounds are fixed: it must not touch them."""
    from tests.backfill_helpers import insert_rows

    run = stack.run(run_id)
    assert all(not int(run.key_min) <= i <= int(run.key_max) for i in OUTSIDE)
    insert_rows(stack.engine, OUTSIDE)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_mid_run_the_lanes_stop_cleanly_and_a_second_batched_finishes(stack, signum):
    run_id = scheduled(stack)
    first = batched(stack, "first.log")
    try:
        wait_until(lambda: stack.run(run_id).batches_done >= 2 and running_batches(stack, run_id) == 2, 30,
                   "two lanes inside batches after two batches", diagnostics=lambda: log_text(stack, "first.log"))
        insert_rows_outside(stack, run_id)
        first.send_signal(signum)
        code = first.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
    assert code != 0, log_text(stack, "first.log")
    run = stack.run(run_id)
    batches = stack.batches(run_id)
    assert run.lease_owner is None, run  # released: the next process need not wait for it
    assert BatchStatus.RUNNING not in {b.status for b in batches}, batches  # each lane finished its batch
    assert run.batches_done < len(IDS) // 5, "the run was not interrupted mid-way"
    done = {i for b in batches if b.status == BatchStatus.SUCCEEDED for i in stack.rows_of(b)}
    assert stack.touched() == {i: int(i in done) for i in [*IDS, *OUTSIDE]}  # committed batches once, others not

    second = batched(stack, "second.log")
    assert second.wait(60) == 0, log_text(stack, "second.log")
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
