"""What a run and a batch are, and what may happen to a run.

`Run`, `Batch`, `Transition` and `BatchError` are read-only values built from one row
of backfill_runs, backfill_batches, backfill_transitions and backfill_batch_errors
(state.py) by their `from_row`; whoever reads whole rows (runs.py, batches.py, the API's lists) hands
these out, never the row itself. A value is a snapshot: a run or a batch changes
only through the named writes of runs.py and batches.py, in the caller's transaction.

The statuses are `StrEnum`s: each member is the string stored in the database and
sent in the JSON, so rows, API responses and f-strings read as before.

ALLOWED_TRANSITIONS is the one authority on how a run's status may change;
`check_transition` (called by runs.transition under the run's row lock) enforces
it, and `Run.can` asks it.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Mapping


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Groupings, usable in SQL (`column.in_(RunStatus.ACTIVE)`) and in Python. Tuples in
# the order above, so that generated SQL and messages are the same in every process.
RunStatus.ALL = tuple(RunStatus)
RunStatus.ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.WAITING)
RunStatus.FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class BatchStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


BatchStatus.ALL = tuple(BatchStatus)
BatchStatus.IN_FLIGHT = (BatchStatus.PENDING, BatchStatus.RUNNING)


# Allowed moves. `failed -> running` is "retry the failed batches"; finished runs
# are otherwise terminal, so a completed run is never silently re-opened.
ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.COMPLETED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.WAITING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.WAITING: frozenset({RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    """A run was asked to move to a status its current status does not allow."""

    def __init__(self, run_id: int, current: str, target: str, hint: str | None = None):
        self.run_id, self.current, self.target = run_id, current, target
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS.get(current, ()))) or "none, it is finished"
        super().__init__(f"run {run_id} is {current}; it cannot become {target} ({hint or 'allowed: ' + allowed})")


def check_transition(run_id: int, current: str, target: str) -> None:
    if target not in ALLOWED_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(run_id, current, target)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


class _FromRow:
    """`from_row` for the values below: one field per column of their table (a
    test checks the two lists agree), statuses turned into their enum."""

    __slots__ = ()
    _enums: ClassVar[dict[str, type[StrEnum]]] = {}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]):
        values = {name: row[name] for name in _field_names(cls)}
        for name, enum in cls._enums.items():
            if values[name] is not None:
                values[name] = enum(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Run(_FromRow):
    """One row of backfill_runs: one execution of a backfill over its key space."""

    id: int
    name: str
    status: RunStatus
    scheduled_by: str | None  # the Alembic revision, if any
    executor: str | None  # "inprocess" or "celery" once started
    key_type: str
    key_min: str | None  # encoded keys (keys.py); the bounds are fixed when the run starts
    key_max: str | None
    cursor: str | None  # the last key handed to a batch
    batch_size: int
    max_parallel: int
    rows_total: int | None
    rows_total_exact: bool
    rows_scanned: int  # keys walked
    rows_done: int  # rows changed
    batches_done: int
    batches_failed: int
    last_error: str | None
    wait_reason: str | None  # why it waits (window, health), until next_window_at
    next_window_at: datetime | None
    lease_owner: str | None  # the in-process driver holding it (inprocess.RunLease)
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"status": RunStatus}

    @property
    def is_active(self) -> bool:
        return self.status in RunStatus.ACTIVE

    @property
    def is_finished(self) -> bool:
        return self.status in RunStatus.FINISHED

    def can(self, target: RunStatus) -> bool:
        """Whether the transition table lets this run move to `target` now."""
        return target in ALLOWED_TRANSITIONS[self.status]


@dataclass(frozen=True, slots=True)
class Batch(_FromRow):
    """One row of backfill_batches: the keys `key_after < key <= key_end` of a run
    (`key_min <= key` for the first batch, whose key_after is None)."""

    id: int
    run_id: int
    seq: int
    key_after: str | None
    key_end: str
    rows_in_range: int
    status: BatchStatus
    attempts: int  # claims so far, a claim whose worker died included
    batch_size: int
    rows_affected: int | None
    duration_ms: int | None
    error: str | None
    claimed_by: str | None  # the claim token of the attempt holding it
    lease_expires_at: datetime | None
    dispatched_at: datetime | None  # last handed to an executor
    started_at: datetime | None
    finished_at: datetime | None

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"status": BatchStatus}


@dataclass(frozen=True, slots=True)
class Transition(_FromRow):
    """One row of backfill_transitions: a run's status change, who made it and why."""

    id: int
    run_id: int
    from_status: RunStatus | None  # None: the run was created
    to_status: RunStatus
    actor: str
    reason: str | None
    at: datetime
    # Not a field: the table's `announced` (0013), the announcer's claim (announce.py),
    # read only there, so that the log reads on a schema before 0013 too.

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"from_status": RunStatus, "to_status": RunStatus}


@dataclass(frozen=True, slots=True)
class BatchError(_FromRow):
    """One row of backfill_batch_errors: one failed attempt of a batch, kept after
    the batch is retried, split or failed for good."""

    id: int
    batch_id: int
    run_id: int
    attempt: int  # 1 for the batch's first attempt (a split batch counts again from 1)
    error_class: str  # the exception's class, e.g. psycopg2.errors.QueryCanceled; WorkerLost
    message: str
    at: datetime
