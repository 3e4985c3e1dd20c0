"""What happened to a batch, and what an executor does next.

`runner.execute_batch` returns a BatchOutcome; `next_step` turns it into the one
answer every executor follows: the in-process lanes (lanes.py), the Celery task
(worker/tasks.py) and the benchmark's worker loop (bench/statements.py). Each
executor carries a step out in its own way (a lane sleeps, a task retries with a
countdown), but what the step is, is decided here only.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # the change is committed
    DONE = "done"  # it had already succeeded (duplicate delivery): nothing changed
    LEASED = "leased"  # another worker holds it; try again after `retry_in` seconds
    RETRY = "retry"  # it failed (or the database was unreachable) and is retried after `retry_in`
    SPLIT = "split"  # it hit the statement timeout: it keeps half its range, `new_batch_ids` the rest
    FAILED = "failed"  # it failed for the last time (the run may have failed too)
    WAITING = "waiting"  # it may not start now (window, health): its run waits for `retry_in` seconds
    NOT_RUNNABLE = "not_runnable"  # its run is not running (paused, cancelled...), or no such batch


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one batch. `next_batch_ids` is set when the batch was run
    with `advance=True` and succeeded: the batches carved in its own transaction,
    to hand out next."""

    kind: Outcome
    batch_id: int
    run_id: int | None = None
    rows: int = 0
    retry_in: float = 0.0
    error: str | None = None
    new_batch_ids: tuple[int, ...] = ()
    next_batch_ids: tuple[int, ...] | None = None


class Step(StrEnum):
    AGAIN = "again"  # run this batch again after `delay` seconds
    SPLIT = "split"  # run this batch again at once, and hand out the other half (`batch_ids`)
    NEXT = "next"  # go on with the run's next batches (`batch_ids`; None: carve them), after the backfill's pause
    LOOK_AT_RUN = "look_at_run"  # failed for good: the run may have failed too; go on only if it still runs
    WAIT = "wait"  # the run waits for its window or health; the batch stays pending until the run is woken
    STOP = "stop"  # nothing to do with this batch: its run is not running, or it does not exist


STEP_AFTER: dict[Outcome, Step] = {
    Outcome.SUCCEEDED: Step.NEXT,
    Outcome.DONE: Step.NEXT,
    Outcome.LEASED: Step.AGAIN,
    Outcome.RETRY: Step.AGAIN,
    Outcome.SPLIT: Step.SPLIT,
    Outcome.FAILED: Step.LOOK_AT_RUN,
    Outcome.WAITING: Step.WAIT,
    Outcome.NOT_RUNNABLE: Step.STOP,
}


@dataclass(frozen=True)
class NextStep:
    kind: Step
    run_id: int | None
    delay: float = 0.0  # AGAIN: seconds to wait first
    batch_ids: tuple[int, ...] | None = None  # SPLIT: the new half; NEXT: the batches carved (None: not yet)


def next_step(outcome: BatchOutcome) -> NextStep:
    """What an executor does after `outcome`. For NEXT and LOOK_AT_RUN, carving the
    next batches (coordinator.advance) is also how the run is looked at: it hands out
    nothing for a run that is no longer running, and ends a run with nothing left."""
    step = STEP_AFTER[outcome.kind]
    if step is Step.AGAIN:
        return NextStep(step, outcome.run_id, delay=outcome.retry_in)
    if step is Step.SPLIT:
        return NextStep(step, outcome.run_id, batch_ids=outcome.new_batch_ids)
    if step is Step.NEXT:
        return NextStep(step, outcome.run_id, batch_ids=outcome.next_batch_ids)
    return NextStep(step, outcome.run_id)
