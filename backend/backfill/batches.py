"""Every write to backfill_batches, each a named step of a batch's life.

    carved (add_batch) -> handed out (mark_dispatched) -> claimed (claim)
    -> held in its own transaction (hold) -> succeeded (record_success)
                                           or back to pending / failed (record_failure)

and the detours: a claim released while the run waits (release_claim), an expired
lease released by the recovery (release_expired_leases), a batch failed because its
workers kept dying (fail_for_lost_workers), a batch halved after a statement timeout
(halve + add_batch), failed batches put back by an operator's retry (put_failed_back).

Every failed attempt is also kept in backfill_batch_errors (log_error), in the
transaction that records the failure: record_failure and halve log theirs, and a
worker found lost (its lease expired while it held the batch) is logged where that is
found: release_expired_leases here, log_lost_worker for the runner's claim.

Each function runs its statements on the caller's connection, in the caller's
transaction: which transaction a write belongs to is the caller's decision (above
all, record_success runs in the batch's own transaction, with its data change).
Reads that serve only one caller stay with it; a batch read whole is a model.Batch.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill import since_0013
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.model import Batch, BatchError, BatchStatus, RunStatus
from backend.backfill.state import backfill_batch_errors, backfill_batches, backfill_runs

# The error class of an attempt whose worker vanished (killed, or over its lease).
WORKER_LOST = "WorkerLost"


class AttemptError(NamedTuple):
    """What one failed attempt logs: its error's class, and its message without it."""

    error_class: str
    message: str


def lock_batch(connection: Connection, batch_id: int) -> Batch | None:
    """Read the batch under its row lock (PostgreSQL) or SQLite's write lock (a no-op
    UPDATE, as runs.lock_run does): two processes claiming one batch take turns."""
    query = sa.select(backfill_batches).where(backfill_batches.c.id == batch_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    else:
        connection.execute(sa.update(backfill_batches).where(backfill_batches.c.id == batch_id)
                           .values(id=backfill_batches.c.id))
    row = connection.execute(query).mappings().first()
    return Batch.from_row(row) if row is not None else None


def add_batch(connection: Connection, *, run_id: int, seq: int, key_after: str | None, key_end: str,
              rows_in_range: int, batch_size: int, now: datetime) -> int:
    """A new pending batch, counted as handed out now (the coordinator carves it and
    hands it out; a split hands out its second half). Returns its id."""
    return int(connection.execute(
        sa.insert(backfill_batches).values(
            run_id=run_id, seq=seq, key_after=key_after, key_end=key_end,
            rows_in_range=rows_in_range, batch_size=batch_size, status=BatchStatus.PENDING,
            dispatched_at=now,
        )
    ).inserted_primary_key[0])


def mark_dispatched(connection: Connection, batch_ids: list[int], now: datetime) -> None:
    """These pending batches were handed out again now (the recovery re-dispatches
    only batches handed out long ago)."""
    connection.execute(
        sa.update(backfill_batches).where(backfill_batches.c.id.in_(batch_ids)).values(dispatched_at=now)
    )


def release_expired_leases(connection: Connection, run_id: int, now: datetime, *,
                           gone_claimant: str | None = None) -> int:
    """Batches whose worker vanished (lease expired) go back to pending, marked as
    not handed out, so that the next recovery dispatches them at once; each lost
    attempt is logged. Returns how many. `gone_claimant`: the claim tokens' prefix
    (`host:pid:`) of a process known to be dead, whose batches go back too, expired
    or not (its transactions died with it: a new attempt waits for their rollback).

    The expired batches are read under their row locks first (PostgreSQL): a second
    recovery at the same time waits, then finds them pending, and logs nothing."""
    lost = backfill_batches.c.lease_expires_at < now
    if gone_claimant is not None:
        lost = sa.or_(lost, backfill_batches.c.claimed_by.startswith(gone_claimant, autoescape=True))
    query = sa.select(backfill_batches).where(
        backfill_batches.c.run_id == run_id,
        backfill_batches.c.status == BatchStatus.RUNNING,
        lost,
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    expired = [Batch.from_row(row) for row in connection.execute(query).mappings()]
    if not expired:
        return 0
    for batch in expired:
        log_lost_worker(connection, batch, now)
    return connection.execute(
        sa.update(backfill_batches)
        .where(backfill_batches.c.id.in_([batch.id for batch in expired]))
        .values(status=BatchStatus.PENDING, claimed_by=None, lease_expires_at=None, dispatched_at=None)
    ).rowcount


def _run_is_running() -> sa.ColumnElement[bool]:
    return (
        sa.select(backfill_runs.c.id)
        .where(backfill_runs.c.id == backfill_batches.c.run_id, backfill_runs.c.status == RunStatus.RUNNING)
        .exists()
    )


def claim(connection: Connection, batch_id: int, token: str, now: datetime, lease_seconds: float) -> bool:
    """Count an attempt and take the lease under `token`, if the batch's run is still
    running. The caller locked and checked the batch (lock_batch); the run row is not
    locked, hence the check in the statement. False: the run changed meanwhile."""
    return bool(connection.execute(
        sa.update(backfill_batches)
        .where(backfill_batches.c.id == batch_id, _run_is_running())
        .values(
            status=BatchStatus.RUNNING,
            attempts=backfill_batches.c.attempts + 1,
            claimed_by=token,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
    ).rowcount)


def hold(connection: Connection, batch_id: int, token: str) -> bool:
    """First statement of the batch transaction: lock the batch row (PostgreSQL row
    lock, SQLite write lock) and check we still hold the claim. A concurrent
    duplicate blocks here until we commit, then finds the batch succeeded."""
    return connection.execute(
        sa.update(backfill_batches)
        .where(
            backfill_batches.c.id == batch_id,
            backfill_batches.c.status == BatchStatus.RUNNING,
            backfill_batches.c.claimed_by == token,
        )
        .values(claimed_by=token)
    ).rowcount == 1


def renew_lease(connection: Connection, batch_id: int, token: str, now: datetime, seconds: float) -> bool:
    """A long attempt (a schema job's index build) keeps its claim: the lease runs
    `seconds` from now again, if `token` still holds the batch."""
    return connection.execute(
        sa.update(backfill_batches)
        .where(backfill_batches.c.id == batch_id, backfill_batches.c.status == BatchStatus.RUNNING,
               backfill_batches.c.claimed_by == token)
        .values(lease_expires_at=now + timedelta(seconds=seconds))
    ).rowcount == 1


def record_success(connection: Connection, batch: Batch, rows: int, duration_ms: int) -> None:
    """The batch's done record and its run's counters: the last statements of the
    batch's own transaction, which holds its data change (the engine's invariant)."""
    now = utcnow()
    connection.execute(
        sa.update(backfill_batches)
        .where(backfill_batches.c.id == batch.id)
        .values(status=BatchStatus.SUCCEEDED, rows_affected=rows, duration_ms=duration_ms,
                finished_at=now, error=None, lease_expires_at=None)
    )
    # Last statement of the change, so the run row is locked for the shortest time
    # when several batches of one run finish together (an advance_in after it
    # needs that lock anyway).
    connection.execute(
        sa.update(backfill_runs)
        .where(backfill_runs.c.id == batch.run_id)
        .values(
            rows_done=backfill_runs.c.rows_done + rows,
            rows_scanned=backfill_runs.c.rows_scanned + batch.rows_in_range,
            batches_done=backfill_runs.c.batches_done + 1,
            heartbeat_at=now,
            updated_at=now,
        )
    )


def record_failure(connection: Connection, batch_id: int, token: str, *, final: bool, error: str,
                   attempt: AttemptError, now: datetime) -> bool:
    """After the batch's rollback: back to pending for a retry, or failed for good
    (`final`), if `token` still holds it, and the attempt's error logged. False: its
    claim was taken over (the new holder's attempt is the one that counts)."""
    recorded = bool(connection.execute(
        sa.update(backfill_batches)
        .where(
            backfill_batches.c.id == batch_id,
            backfill_batches.c.status == BatchStatus.RUNNING,
            backfill_batches.c.claimed_by == token,
        )
        .values(
            status=BatchStatus.FAILED if final else BatchStatus.PENDING,
            error=error,
            lease_expires_at=None,
            finished_at=now if final else None,
            dispatched_at=now,
        )
    ).rowcount)
    if recorded:
        log_error(connection, batch_id, attempt, now)
    return recorded


def fail_for_lost_workers(connection: Connection, batch_id: int, error: str, now: datetime) -> None:
    """A batch whose worker was lost on every attempt fails at its next claim (the
    caller locked it), instead of being retried forever."""
    connection.execute(
        sa.update(backfill_batches)
        .where(backfill_batches.c.id == batch_id)
        .values(status=BatchStatus.FAILED, finished_at=now, claimed_by=None, lease_expires_at=None,
                error=error)
    )


def release_claim(connection: Connection, batch_id: int) -> None:
    """Back to pending, unclaimed: a dead worker's batch whose run must now wait for
    its window or for health, so that it is not retried outside the window."""
    connection.execute(
        sa.update(backfill_batches).where(backfill_batches.c.id == batch_id)
        .values(status=BatchStatus.PENDING, claimed_by=None, lease_expires_at=None)
    )


def halve(connection: Connection, batch_id: int, *, key_end: str, rows_in_range: int, note: str,
          attempt: AttemptError, now: datetime) -> None:
    """After a statement timeout: the batch keeps the first half of its range, pending
    again with fresh attempts (add_batch takes the rest); the attempt that timed out
    is logged first, under its number."""
    log_error(connection, batch_id, attempt, now)
    connection.execute(
        sa.update(backfill_batches).where(backfill_batches.c.id == batch_id).values(
            key_end=key_end, rows_in_range=rows_in_range, batch_size=rows_in_range,
            status=BatchStatus.PENDING, attempts=0, error=note, claimed_by=None, lease_expires_at=None,
            dispatched_at=now)
    )


def put_failed_back(connection: Connection, run_id: int) -> None:
    """An operator's retry: the run's failed batches are pending again with fresh
    attempts, not handed out yet (runs.clear_failed_count resets the run's count)."""
    connection.execute(
        sa.update(backfill_batches)
        .where(backfill_batches.c.run_id == run_id, backfill_batches.c.status == BatchStatus.FAILED)
        .values(status=BatchStatus.PENDING, attempts=0, error=None, finished_at=None, dispatched_at=None)
    )


def log_error(connection: Connection, batch_id: int, attempt: AttemptError, now: datetime, *,
              number: int | None = None) -> None:
    """Keep one failed attempt of the batch: its number (default: the batch's attempts
    now), its error's class and message, and when (not on a schema before 0013)."""
    if not since_0013.applied(connection, cached=False):
        return
    batch = backfill_batches.c
    connection.execute(
        sa.insert(backfill_batch_errors).from_select(
            ["batch_id", "run_id", "attempt", "error_class", "message", "at"],
            sa.select(batch.id, batch.run_id, batch.attempts if number is None else sa.literal(number),
                      sa.literal(attempt.error_class[:200], sa.String),
                      sa.literal(attempt.message, sa.Text), sa.literal(now, backfill_batch_errors.c.at.type))
            .where(batch.id == batch_id),
        )
    )


def log_lost_worker(connection: Connection, batch: Batch, now: datetime) -> None:
    """The attempt of a batch found running under an expired lease (`batch` as read
    then, before a new claim counts another attempt): its worker was killed, or ran
    over its lease."""
    expired = as_utc(batch.lease_expires_at)
    when = f" at {expired:%Y-%m-%d %H:%M:%S} UTC" if expired is not None else ""
    log_error(connection, batch.id, AttemptError(
        WORKER_LOST, f"the worker holding it ({batch.claimed_by}) was lost: its lease expired{when} "
                     "(killed, or over its lease)"), now, number=batch.attempts)


def errors_of(connection: Connection, batch_ids: list[int]) -> dict[int, list[BatchError]]:
    """The failed attempts of these batches, oldest first, by batch id."""
    found: dict[int, list[BatchError]] = {batch_id: [] for batch_id in batch_ids}
    if not batch_ids or not since_0013.applied(connection):
        return found
    query = (sa.select(backfill_batch_errors).where(backfill_batch_errors.c.batch_id.in_(batch_ids))
             .order_by(backfill_batch_errors.c.id))
    for row in connection.execute(query).mappings():
        found[row["batch_id"]].append(BatchError.from_row(row))
    return found


def errors_of_run(connection: Connection, run_id: int) -> list[BatchError]:
    """Every failed attempt of the run's batches, oldest first."""
    if not since_0013.applied(connection):
        return []
    query = (sa.select(backfill_batch_errors).where(backfill_batch_errors.c.run_id == run_id)
             .order_by(backfill_batch_errors.c.id))
    return [BatchError.from_row(row) for row in connection.execute(query).mappings()]


def seqs_of(connection: Connection, batch_ids: list[int]) -> dict[int, int]:
    """Each batch's seq (its number within its run), by batch id."""
    if not batch_ids:
        return {}
    query = sa.select(backfill_batches.c.id, backfill_batches.c.seq).where(backfill_batches.c.id.in_(batch_ids))
    return dict(connection.execute(query).all())
