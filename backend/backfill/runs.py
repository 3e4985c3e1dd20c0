"""Reading runs, and every write to backfill_runs and backfill_transitions.

A run's status changes only through `transition`, which checks the transition table
(model.py) under the run's row lock and logs the move. The other writes are the
run's bookkeeping, each named for why it happens: its executor, its cursor, its
counters and last error, the in-process driver's lease, and forgetting runs.

Each function runs on the caller's connection, in the caller's transaction (the
writes of batches.py do the same).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.clock import utcnow
from backend.backfill.model import Run, RunStatus, Transition, check_transition
from backend.backfill import since_0013
from backend.backfill.state import backfill_batch_errors, backfill_batches, backfill_runs, backfill_transitions


# A Transition's columns: all but `announced`, which 0013 added and only announce.py
# reads, so that the log reads on an older schema too (during --batched).
TRANSITION_COLUMNS = tuple(column for column in backfill_transitions.c if column.name != "announced")

# An operator's reason for a control (pause, cancel), from the API or the CLI.
REASON_MAX_LENGTH = 500


class RunNotFound(LookupError):
    def __init__(self, ref: Any):
        super().__init__(f"no backfill run {ref!r}")


def get_run(connection: Connection, run_id: int) -> Run:
    row = connection.execute(sa.select(backfill_runs).where(backfill_runs.c.id == run_id)).mappings().first()
    if row is None:
        raise RunNotFound(run_id)
    return Run.from_row(row)


def latest_run(connection: Connection, name: str) -> Run | None:
    query = (
        sa.select(backfill_runs)
        .where(backfill_runs.c.name == name)
        .order_by(backfill_runs.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).mappings().first()
    return Run.from_row(row) if row is not None else None


def list_runs(connection: Connection, *, status: str | None = None, name: str | None = None) -> list[Run]:
    query = sa.select(backfill_runs).order_by(backfill_runs.c.id)
    if status is not None:
        query = query.where(backfill_runs.c.status == status)
    if name is not None:
        query = query.where(backfill_runs.c.name == name)
    return [Run.from_row(row) for row in connection.execute(query).mappings()]


def lock_run(connection: Connection, run_id: int) -> Run:
    """Take the run's row lock for the rest of the transaction and return the run,
    so that two coordinators never carve the same key range.

    PostgreSQL: FOR NO KEY UPDATE, the lock an UPDATE of the row takes. The stronger
    FOR UPDATE would deadlock a transaction that updated the run before (a batch that
    records its success, then carves) against a batch transaction holding the KEY
    SHARE lock of a foreign key check (its second update of its own batch row) and
    waiting to update the run. SQLite: a no-op UPDATE takes the write lock."""
    if connection.dialect.name == "postgresql":
        query = sa.select(backfill_runs).where(backfill_runs.c.id == run_id).with_for_update(key_share=True)
        row = connection.execute(query).mappings().first()
        if row is None:
            raise RunNotFound(run_id)
        return Run.from_row(row)
    connection.execute(sa.update(backfill_runs).where(backfill_runs.c.id == run_id).values(id=backfill_runs.c.id))
    return get_run(connection, run_id)


def transition(connection: Connection, run_id: int, target: str, *, actor: str = "engine",
               reason: str | None = None, **values: Any) -> Run:
    """Move a run to `target`, refusing moves the status machine does not allow, and
    record the move in the transition log (who or what, and why).

    The run's row is locked first, so a concurrent move is never overwritten."""
    run = lock_run(connection, run_id)
    check_transition(run_id, run.status, target)
    log_transition(connection, run_id, run.status, target, actor=actor, reason=reason)
    now = utcnow()
    values.setdefault("updated_at", now)
    if target in RunStatus.FINISHED:
        values.setdefault("finished_at", now)
    connection.execute(
        sa.update(backfill_runs)
        .where(backfill_runs.c.id == run_id, backfill_runs.c.status == run.status)
        .values(status=target, **values)
    )
    return get_run(connection, run_id)


def log_transition(connection: Connection, run_id: int, from_status: str | None, to_status: str, *,
                   actor: str, reason: str | None = None) -> None:
    """The durable record of a status change. Written not yet announced: once it
    commits, one process claims it for the hooks and notifications (announce.py)."""
    unannounced = {"announced": False} if since_0013.applied(connection, cached=False) else {}
    connection.execute(
        sa.insert(backfill_transitions).values(
            run_id=run_id, from_status=from_status, to_status=to_status, actor=actor[:128], reason=reason,
            at=utcnow(), **unannounced,
        )
    )


def transitions(connection: Connection, run_id: int) -> list[Transition]:
    query = sa.select(*TRANSITION_COLUMNS).where(backfill_transitions.c.run_id == run_id).order_by(
        backfill_transitions.c.id
    )
    return [Transition.from_row(row) for row in connection.execute(query).mappings()]


def transitions_into(connection: Connection, status_of: dict[int, str]) -> dict[int, Transition]:
    """For each run id of `status_of`, the latest transition into that status (who
    paused or cancelled it, and why): one query over the runs' transitions."""
    if not status_of:
        return {}
    t = backfill_transitions
    latest = (sa.select(sa.func.max(t.c.id))
              .where(t.c.run_id.in_(list(status_of)), t.c.to_status.in_(set(status_of.values())))
              .group_by(t.c.run_id, t.c.to_status))
    fields = [field.name for field in dataclasses.fields(Transition)]  # its columns, whatever the table adds
    rows = connection.execute(sa.select(*(t.c[name] for name in fields)).where(t.c.id.in_(latest))).mappings()
    found = (Transition.from_row(row) for row in rows)
    return {row.run_id: row for row in found if status_of.get(row.run_id) == row.to_status}


def create_run(connection: Connection, name: str, *, batch_size: int, max_parallel: int,
               key_type: str, scheduled_by: str | None = None, actor: str | None = None) -> int:
    result = connection.execute(
        sa.insert(backfill_runs).values(
            name=name, status=RunStatus.PENDING, batch_size=batch_size, max_parallel=max_parallel,
            key_type=key_type, scheduled_by=scheduled_by,
        )
    )
    run_id = int(result.inserted_primary_key[0])
    who = actor or (f"revision {scheduled_by}" if scheduled_by else "engine")
    log_transition(connection, run_id, None, RunStatus.PENDING, actor=who, reason="scheduled")
    return run_id


def set_executor(connection: Connection, run_id: int, executor: str) -> None:
    """An active run taken over by another kind of executor (`--batched` after the
    workers, or the reverse) records who drives it now."""
    connection.execute(
        sa.update(backfill_runs).where(backfill_runs.c.id == run_id).values(executor=executor)
    )


def move_cursor(connection: Connection, run_id: int, cursor: str | None, batch_size: int, now: datetime) -> None:
    """After carving: the last key handed to a batch, and the batch size the carving
    used (the optimizer's), in the transaction that created the batches."""
    connection.execute(
        sa.update(backfill_runs)
        .where(backfill_runs.c.id == run_id)
        .values(cursor=cursor, batch_size=batch_size, updated_at=now)
    )


def note_error(connection: Connection, run_id: int, message: str, now: datetime) -> None:
    """The run's last error says what goes wrong while it goes on: a batch retried or
    split, the database unreachable for a while."""
    connection.execute(
        sa.update(backfill_runs).where(backfill_runs.c.id == run_id)
        .values(last_error=message, updated_at=now)
    )


def count_failed_batch(connection: Connection, run_id: int, message: str) -> None:
    """One more batch failed for good (the caller then decides whether the run fails)."""
    connection.execute(
        sa.update(backfill_runs)
        .where(backfill_runs.c.id == run_id)
        .values(batches_failed=backfill_runs.c.batches_failed + 1, last_error=message, updated_at=utcnow())
    )


def clear_failed_count(connection: Connection, run_id: int) -> None:
    """An operator's retry put the failed batches back (batches.put_failed_back)."""
    connection.execute(
        sa.update(backfill_runs).where(backfill_runs.c.id == run_id).values(batches_failed=0)
    )


def take_lease(connection: Connection, run_id: int, owner: str, now: datetime, seconds: float, *,
               dead_owner: str | None = None) -> bool:
    """The in-process driver's claim to drive the run (inprocess.RunLease): taken when
    free, expired or already `owner`'s, or still held by `dead_owner` (a driver known
    to be gone), for `seconds`. False: another live driver has it."""
    takeable = [
        backfill_runs.c.lease_owner.is_(None),
        backfill_runs.c.lease_owner == owner,
        backfill_runs.c.lease_expires_at < now,
    ]
    if dead_owner is not None:
        takeable.append(backfill_runs.c.lease_owner == dead_owner)
    return connection.execute(
        sa.update(backfill_runs)
        .where(backfill_runs.c.id == run_id, sa.or_(*takeable))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds), heartbeat_at=now)
    ).rowcount == 1


def release_lease(connection: Connection, run_id: int, owner: str) -> None:
    """The driver stops (finished, waiting, interrupted): the next one takes over at once."""
    connection.execute(
        sa.update(backfill_runs)
        .where(backfill_runs.c.id == run_id, backfill_runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def delete_runs(connection: Connection, run_ids: Iterable[int]) -> None:
    """Forget runs with their batches and transition log (a downgrade removes what
    its upgrade scheduled). Explicit deletes: on SQLite, foreign keys (and so
    cascades) are off while migrating."""
    run_ids = list(run_ids)
    if since_0013.applied(connection, cached=False):
        connection.execute(sa.delete(backfill_batch_errors).where(backfill_batch_errors.c.run_id.in_(run_ids)))
    connection.execute(sa.delete(backfill_transitions).where(backfill_transitions.c.run_id.in_(run_ids)))
    connection.execute(sa.delete(backfill_batches).where(backfill_batches.c.run_id.in_(run_ids)))
    connection.execute(sa.delete(backfill_runs).where(backfill_runs.c.id.in_(run_ids)))


def batch_counts(connection: Connection, run_id: int) -> dict[str, int]:
    query = (
        sa.select(backfill_batches.c.status, sa.func.count())
        .where(backfill_batches.c.run_id == run_id)
        .group_by(backfill_batches.c.status)
    )
    return {status: count for status, count in connection.execute(query)}
