"""The engine's domain model: runs, batches and transitions built from their rows,
the status enums, the transition table as the one authority on what may happen to a
run, and the one table of what an executor does after each batch outcome."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from backend.backfill import runs
from backend.backfill.model import (
    ALLOWED_TRANSITIONS,
    Batch,
    BatchError,
    BatchStatus,
    IllegalTransition,
    Run,
    RunStatus,
    Transition,
    check_transition,
)
from backend.backfill.outcome import STEP_AFTER, BatchOutcome, Outcome, Step, next_step
from backend.backfill.state import (backfill_batch_errors, backfill_batches, backfill_runs, backfill_transitions,
                                    metadata)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def run_row(**overrides):
    row = {column.name: None for column in backfill_runs.columns}
    row.update(id=7, name="orders_total_cents", status="running", key_type="int", batch_size=1000,
               max_parallel=2, rows_total_exact=True, rows_scanned=10, rows_done=9, batches_done=1,
               batches_failed=0, created_at=NOW, updated_at=NOW)
    row.update(overrides)
    return row


@pytest.mark.parametrize("value, table", [(Run, backfill_runs), (Batch, backfill_batches),
                                          (Transition, backfill_transitions),
                                          (BatchError, backfill_batch_errors)])
def test_each_value_has_one_field_per_column_of_its_table(value, table):
    # But a transition's `announced`: the announcer's claim (announce.py), read only there.
    columns = [column.name for column in table.columns if (value, column.name) != (Transition, "announced")]
    assert [field.name for field in dataclasses.fields(value)] == columns


def test_a_run_is_built_from_its_row_with_its_status_as_the_enum():
    run = Run.from_row(run_row(status="paused", last_error="boom"))
    assert run.status is RunStatus.PAUSED
    assert (run.id, run.name, run.batch_size, run.last_error, run.created_at) == (
        7, "orders_total_cents", 1000, "boom", NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = RunStatus.RUNNING  # type: ignore[misc]
    assert not hasattr(run, "__dict__")  # slots: a run per batch is cheap


def test_a_row_with_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="'sleeping' is not a valid RunStatus"):
        Run.from_row(run_row(status="sleeping"))


def test_statuses_read_as_the_strings_stored_and_sent():
    assert RunStatus.RUNNING == "running" and f"{RunStatus.RUNNING}" == "running"
    assert json.dumps({"status": BatchStatus.SUCCEEDED}) == '{"status": "succeeded"}'
    assert [str(status) for status in RunStatus.ALL] == [
        "pending", "running", "paused", "waiting", "completed", "failed", "cancelled"]
    assert set(RunStatus.ACTIVE) | set(RunStatus.FINISHED) == set(RunStatus)
    assert not set(RunStatus.ACTIVE) & set(RunStatus.FINISHED)
    assert BatchStatus.IN_FLIGHT == (BatchStatus.PENDING, BatchStatus.RUNNING)


def test_the_groupings_work_in_sql():
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        for status in ("pending", "waiting", "completed"):
            run_id = runs.create_run(connection, "touch", batch_size=1, max_parallel=1, key_type="int")
            connection.execute(sa.update(backfill_runs).where(backfill_runs.c.id == run_id).values(status=status))
        active = connection.execute(sa.select(backfill_runs.c.id).where(
            backfill_runs.c.status.in_(RunStatus.ACTIVE))).scalars().all()
        finished = connection.execute(sa.select(backfill_runs.c.id).where(
            backfill_runs.c.status.in_(RunStatus.FINISHED))).scalars().all()
    assert (sorted(active), finished) == ([1, 2], [3])


@pytest.mark.parametrize("current", list(RunStatus))
@pytest.mark.parametrize("target", list(RunStatus))
def test_a_run_asks_the_transition_table_what_it_may_become(current, target):
    run = Run.from_row(run_row(status=current.value))
    allowed = target in ALLOWED_TRANSITIONS[current]
    assert run.can(target) is allowed
    if allowed:
        check_transition(run.id, run.status, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(run.id, run.status, target)


def test_finished_runs_can_become_nothing_and_active_ones_are_not_finished():
    for status in RunStatus:
        run = Run.from_row(run_row(status=status.value))
        assert run.is_finished == (status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED))
        assert run.is_active == (not run.is_finished)
    completed = Run.from_row(run_row(status="completed"))
    assert not any(completed.can(target) for target in RunStatus)
    failed = Run.from_row(run_row(status="failed"))
    assert failed.can(RunStatus.RUNNING)  # retry its failed batches



def test_the_readers_hand_out_values_not_rows():
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        run_id = runs.create_run(connection, "touch", batch_size=5, max_parallel=1, key_type="int")
        run = runs.transition(connection, run_id, RunStatus.RUNNING, actor="test", reason="go")
        assert isinstance(run, Run) and run.status is RunStatus.RUNNING
        assert runs.get_run(connection, run_id) == run
        assert runs.latest_run(connection, "touch") == run
        assert runs.list_runs(connection, status=RunStatus.RUNNING) == [run]
        assert runs.lock_run(connection, run_id) == run
        log = runs.transitions(connection, run_id)
    assert [(t.from_status, t.to_status, t.actor) for t in log] == [
        (None, RunStatus.PENDING, "engine"), (RunStatus.PENDING, RunStatus.RUNNING, "test")]
    assert all(isinstance(t, Transition) for t in log)


# --- after a batch: the one table every executor follows -------------------------------

@pytest.mark.parametrize("kind, step", [
    (Outcome.SUCCEEDED, Step.NEXT),
    (Outcome.DONE, Step.NEXT),
    (Outcome.LEASED, Step.AGAIN),
    (Outcome.RETRY, Step.AGAIN),
    (Outcome.SPLIT, Step.SPLIT),
    (Outcome.FAILED, Step.LOOK_AT_RUN),
    (Outcome.WAITING, Step.WAIT),
    (Outcome.NOT_RUNNABLE, Step.STOP),
])
def test_each_outcome_has_one_next_step(kind, step):
    assert next_step(BatchOutcome(kind, batch_id=3, run_id=1)).kind is step


def test_every_outcome_has_a_step():
    assert set(STEP_AFTER) == set(Outcome)


def test_a_retried_or_leased_batch_runs_again_after_its_delay():
    for kind in (Outcome.RETRY, Outcome.LEASED):
        step = next_step(BatchOutcome(kind, batch_id=3, run_id=1, retry_in=2.5, error="boom"))
        assert (step.kind, step.delay, step.run_id) == (Step.AGAIN, 2.5, 1)
    # The database was unreachable: no run known, the batch is still run again.
    assert next_step(BatchOutcome(Outcome.RETRY, batch_id=3, retry_in=1.0)).delay == 1.0


def test_a_success_hands_out_the_batches_it_carved_or_asks_for_them():
    carved = next_step(BatchOutcome(Outcome.SUCCEEDED, 3, 1, rows=10, next_batch_ids=(4, 5)))
    assert (carved.kind, carved.batch_ids) == (Step.NEXT, (4, 5))
    not_carved = next_step(BatchOutcome(Outcome.SUCCEEDED, 3, 1, rows=10))  # run without advance
    assert not_carved.batch_ids is None
    assert next_step(BatchOutcome(Outcome.DONE, 3, 1)).batch_ids is None


def test_a_split_batch_hands_out_its_other_half():
    step = next_step(BatchOutcome(Outcome.SPLIT, 3, 1, error="timeout", new_batch_ids=(9,)))
    assert (step.kind, step.batch_ids, step.delay) == (Step.SPLIT, (9,), 0.0)


def test_outcomes_read_as_the_strings_the_worker_returns_and_logs():
    assert [str(kind) for kind in Outcome] == [
        "succeeded", "done", "leased", "retry", "split", "failed", "waiting", "not_runnable"]
    assert BatchOutcome(Outcome.DONE, 3).kind == "done"
