"""Runs one batch. This module holds THE invariant of the engine:

    the batch's data change and the record that the batch succeeded commit in one
    database transaction.

A redelivered or duplicated batch finds itself succeeded and changes nothing; a
batch that crashes rolls back entirely (data and record) and is retried. Attempts
are counted in a separate short transaction first, so that a batch that kills its
worker every time still reaches its attempt limit.
"""
from __future__ import annotations

import os
import socket
import traceback
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backend.backfill import batches, batching, coordinator, runs
from backend.backfill.registry import Catalog
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.keys import KeyRange, decode_key, encode_key
from backend.backfill.admission import admit
from backend.backfill.memory import ExecutorMemory
from backend.backfill.policy import RunPolicy
from backend.backfill.settings import EngineSettings
from backend.backfill.model import Batch, BatchStatus, Run, RunStatus
from backend.backfill.outcome import BatchOutcome, Outcome
from backend.backfill.state import backfill_batches
from backend.db import write_transaction
from backend.metrics import events

ERROR_TEXT_LIMIT = 4000
SPLIT_NOTE = "split in two after a statement timeout"


def new_claim_token() -> str:
    """Identifies one attempt of one batch: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def execute_batch(engine: Engine, catalog: Catalog, batch_id: int, settings: EngineSettings,
                  claim_token: str | None = None, *, advance: bool = False,
                  memory: ExecutorMemory) -> BatchOutcome:
    """Run one batch. A database that cannot be reached is a `retry` (with back-off),
    and the outage is recorded on the run as soon as the database answers again
    (until then the executor's `memory` keeps it).

    With `advance`, a batch that succeeds also carves the run's next batches in its
    own transaction (see coordinator.advance_in), returned in `next_batch_ids`."""
    try:
        outcome = _execute(engine, catalog, batch_id, settings, claim_token, advance, memory)
    except sa.exc.DBAPIError as exc:
        error = describe_error(exc)
        memory.outage = (memory.outage[0] if memory.outage else utcnow(), error)
        return events.batch_outcome(BatchOutcome(Outcome.RETRY, batch_id, error=f"database unreachable: {error}",
                                                 retry_in=settings.retry_delay(3)))
    if memory.outage is not None and outcome.run_id is not None:
        _record_outage(engine, outcome.run_id, *memory.outage)
        memory.outage = None
    return events.batch_outcome(outcome)  # counted and logged


def _record_outage(engine: Engine, run_id: int, since: datetime, error: str) -> None:
    message = (f"database connection failed for {socket.gethostname()}:{os.getpid()} from "
               f"{since.isoformat(timespec='seconds')} to {utcnow().isoformat(timespec='seconds')}: {error}")
    with engine.begin() as connection:
        runs.note_error(connection, run_id, message[:ERROR_TEXT_LIMIT], utcnow())


def _execute(engine: Engine, catalog: Catalog, batch_id: int, settings: EngineSettings,
             claim_token: str | None, advance: bool, memory: ExecutorMemory) -> BatchOutcome:
    token = claim_token or new_claim_token()
    claimed = _claim(engine, catalog, batch_id, token, settings, memory)
    if isinstance(claimed, BatchOutcome):
        return claimed
    batch, run = claimed
    backfill = catalog.get(run.name)
    key_range = KeyRange(
        after=decode_key(run.key_type, batch.key_after),
        end=decode_key(run.key_type, batch.key_end),
        start=decode_key(run.key_type, run.key_min),
    )
    started = utcnow()  # wall time through the engine's clock, so tests can simulate slow batches
    try:
        # A schema job's statement cannot run in a transaction: it runs first, and is
        # idempotent (backend/backfill/schema_jobs.py); its done record follows.
        done_outside = backfill.process_outside(engine, batch, run, token, settings) \
            if backfill.outside_transaction else None
        with engine.begin() as connection:
            if not batches.hold(connection, batch_id, token):
                # Our claim was taken over after our lease expired: the new holder
                # owns the range now, we must not touch it.
                return BatchOutcome(Outcome.LEASED, batch_id, run.id, retry_in=settings.lease_seconds)
            if done_outside is None:
                _configure_batch_transaction(connection, settings)
                connection.info["backfill_run_id"] = run.id  # for state a backfill keeps per run
                rows = backfill.process(connection, key_range)
            else:
                rows = done_outside
            batches.record_success(connection, batch, rows, int((utcnow() - started).total_seconds() * 1000))
            next_ids = tuple(coordinator.advance_in(connection, catalog, run.id, settings)) if advance else None
    except Exception as exc:
        if is_statement_timeout(exc) and batch.rows_in_range > 1:
            split = _split(engine, backfill, batch, key_range, token, exc)
            if split is not None:
                return split
        return _record_failure(engine, backfill, batch, run, token, exc, settings)
    return BatchOutcome(Outcome.SUCCEEDED, batch_id, run.id, rows=rows, next_batch_ids=next_ids)


def _claim(engine: Engine, catalog: Catalog, batch_id: int, token: str, settings: EngineSettings,
           memory: ExecutorMemory):
    """Count an attempt and take the lease, in one short transaction of its own, after
    two checks: a batch that used up its attempts (its worker was lost each time)
    fails instead, and a batch that may not start now (window, health) stays pending
    while its run waits. Returns (batch, run) when claimed, else the outcome."""
    now = utcnow()
    with engine.begin() as connection:
        batch = batches.lock_batch(connection, batch_id)
        if batch is None:
            return BatchOutcome(Outcome.NOT_RUNNABLE, batch_id, error="no such batch")
        run = runs.get_run(connection, batch.run_id)
        if run.status != RunStatus.RUNNING or not _is_claimable(batch, now):
            return _why_not_claimed(batch, run, now)
        backfill = catalog.get(run.name)
        if batch.attempts >= backfill.max_attempts:
            return _fail_out_of_attempts(connection, backfill, batch, run, now, settings)
        admission = admit(connection, backfill, run, RunPolicy.of(backfill, settings), settings, now, memory)
        if not admission.allowed:
            return _wait_for_admission(connection, batch, run, admission, now)
        # The batch row is locked and was checked above; the run row is not locked:
        # the claim fails when the run changed since we read it.
        if not batches.claim(connection, batch_id, token, now, settings.lease_seconds):
            return _why_not_claimed(batch, runs.get_run(connection, batch.run_id), now)
        if batch.status == BatchStatus.RUNNING:  # claimed over an expired lease: its attempt was lost
            batches.log_lost_worker(connection, batch, now)
    if batch.status == BatchStatus.RUNNING:  # claimed over an expired lease: its worker is gone
        events.lease_taken_over()
    return batch, run


def _fail_out_of_attempts(connection: Connection, backfill, batch: Batch, run: Run, now: datetime,
                          settings: EngineSettings) -> BatchOutcome:
    """A batch whose worker was lost on every attempt (killed, or over its lease)
    never reached _record_failure; it fails here instead of being retried forever."""
    if batch.status == BatchStatus.RUNNING:  # the last attempt's lease expired: not logged yet
        batches.log_lost_worker(connection, batch, now)
    batches.fail_for_lost_workers(  # locked and checked by _claim
        connection, batch.id, f"its worker was lost on each of {batch.attempts} attempts "
                                 f"(killed, or over the {settings.lease_seconds:g}s lease)", now)
    message = (f"batch {batch.seq} failed after {batch.attempts} attempts: "
               "its worker was lost each time (killed, or over its lease)")
    _fail_run_if_too_many(connection, backfill, run.id, message, settings)
    return BatchOutcome(Outcome.FAILED, batch.id, run.id, error=message)


def _wait_for_admission(connection: Connection, batch: Batch, run: Run, admission, now: datetime) -> BatchOutcome:
    """Windows and health said no: the batch stays pending (a dead worker's claim is
    released too, so that it is not retried outside the window) and its run waits,
    with the reason and the retry time in its row."""
    if batch.status == BatchStatus.RUNNING:  # its lease expired (checked by _claim)
        batches.log_lost_worker(connection, batch, now)
        batches.release_claim(connection, batch.id)
    if runs.lock_run(connection, run.id).status == RunStatus.RUNNING:
        runs.transition(connection, run.id, RunStatus.WAITING, actor=admission.actor,
                        reason=admission.reason, wait_reason=admission.reason,
                        next_window_at=admission.retry_at)
    return BatchOutcome(Outcome.WAITING, batch.id, run.id, error=admission.reason,
                        retry_in=max((admission.retry_at - now).total_seconds(), 0.0))


def _is_claimable(batch: Batch, now: datetime) -> bool:
    """Pending, or running under a lease that expired (its worker is gone)."""
    if batch.status == BatchStatus.PENDING:
        return True
    expires = as_utc(batch.lease_expires_at)
    return batch.status == BatchStatus.RUNNING and (expires is None or expires < now)


def _fail_run_if_too_many(connection: Connection, backfill, run_id: int, message: str,
                          settings: EngineSettings) -> None:
    """Count a batch failed for good; fail the run once failures pass the tolerated share."""
    runs.count_failed_batch(connection, run_id, message)
    current = runs.lock_run(connection, run_id)
    if current.status in (RunStatus.RUNNING, RunStatus.WAITING) and RunPolicy.of(
        backfill, settings
    ).failed_too_often(current.batches_failed, current.batches_done):
        runs.transition(connection, run_id, RunStatus.FAILED, actor="engine", reason=message)


def is_statement_timeout(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "pgcode", None) == "57014"  # query_canceled


def _split(engine: Engine, backfill, batch: Batch, key_range: KeyRange, token: str,
           exc: Exception) -> BatchOutcome | None:
    """Halve a batch that hit the statement timeout (as GitLab does): this batch keeps
    the first half, a new batch takes the rest; both retry with fresh attempts."""
    now = utcnow()
    with engine.begin() as connection:
        runs.lock_run(connection, batch.run_id)
        still_ours = connection.execute(
            sa.select(backfill_batches.c.id).where(
                backfill_batches.c.id == batch.id, backfill_batches.c.status == BatchStatus.RUNNING,
                backfill_batches.c.claimed_by == token)
        ).first()
        half = batching.next_range(connection, backfill, after=key_range.after, key_min=key_range.start,
                                   key_max=key_range.end, size=max(batch.rows_in_range // 2, 1))
        if still_ours is None or half is None or half.end == key_range.end:
            return None
        rest = connection.execute(
            sa.select(sa.func.count()).select_from(backfill.table)
            .where(KeyRange(after=half.end, end=key_range.end).clause(backfill.key_column))
        ).scalar_one()
        seq = connection.execute(
            sa.select(sa.func.max(backfill_batches.c.seq)).where(backfill_batches.c.run_id == batch.run_id)
        ).scalar_one()
        note = f"{SPLIT_NOTE}: {describe_error(exc)}"
        batches.halve(connection, batch.id, key_end=encode_key(half.end), rows_in_range=half.rows, note=note,
                      attempt=batches.AttemptError(error_class(exc), f"{SPLIT_NOTE}: {error_message(exc)}"),
                      now=now)
        new_id = batches.add_batch(connection, run_id=batch.run_id, seq=seq + 1, key_after=encode_key(half.end),
                                   key_end=batch.key_end, rows_in_range=int(rest), batch_size=int(rest), now=now)
        runs.note_error(connection, batch.run_id, f"batch {batch.seq} {note}", now)
    return BatchOutcome(Outcome.SPLIT, batch.id, batch.run_id, error=note, new_batch_ids=(int(new_id),))


def _why_not_claimed(batch: Batch, run: Run, now: datetime) -> BatchOutcome:
    if batch.status == BatchStatus.SUCCEEDED:
        return BatchOutcome(Outcome.DONE, batch.id, run.id)
    if batch.status == BatchStatus.RUNNING and run.status == RunStatus.RUNNING:
        remaining = (as_utc(batch.lease_expires_at) - now).total_seconds()
        return BatchOutcome(Outcome.LEASED, batch.id, run.id, retry_in=max(remaining, 0.0) + 0.1)
    reason = f"batch is {batch.status}, run is {run.status}"
    return BatchOutcome(Outcome.NOT_RUNNABLE, batch.id, run.id, error=reason)


def _configure_batch_transaction(connection: Connection, settings: EngineSettings) -> None:
    """PostgreSQL: a batch that runs too long is cut (and split), and is not JIT compiled."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"SET LOCAL statement_timeout = {settings.statement_timeout_ms}"))
        without_jit(connection)


def without_jit(connection: Connection) -> None:
    """No JIT compilation for the rest of this PostgreSQL transaction. A batch is sized
    to take about a hundred milliseconds, and compiling its statement costs 10-15 ms of
    that once the planner's estimate crosses `jit_above_cost` (about 5,000 orders for
    orders_total_cents); it also made the batch time jump at that size."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SET LOCAL jit = off"))


def describe_error(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()[:ERROR_TEXT_LIMIT]


def error_message(exc: BaseException) -> str:
    """The error's own text, without its class (error_class says it)."""
    return (str(exc) or repr(exc))[:ERROR_TEXT_LIMIT]


def error_class(exc: BaseException) -> str:
    """The class an attempt's error is filed under: the database driver's own error
    when SQLAlchemy wrapped one (psycopg2.errors.QueryCanceled says more than
    sqlalchemy.exc.OperationalError), with its module unless it is a builtin."""
    cls = type(getattr(exc, "orig", None) or exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _record_failure(engine: Engine, backfill, batch: Batch, run: Run, token: str, exc: Exception,
                    settings: EngineSettings) -> BatchOutcome:
    """After the rollback: put the batch back for a retry, or fail it once it has
    used its attempts; the run fails when its failed batches pass the tolerated share."""
    error = describe_error(exc)
    now = utcnow()
    with write_transaction(engine) as connection:
        attempts = connection.execute(
            sa.select(backfill_batches.c.attempts).where(backfill_batches.c.id == batch.id)
        ).scalar_one()
        final = attempts >= backfill.max_attempts
        if not batches.record_failure(connection, batch.id, token, final=final, error=error, now=now,
                                      attempt=batches.AttemptError(error_class(exc), error_message(exc))):
            return BatchOutcome(Outcome.LEASED, batch.id, run.id, error=error, retry_in=settings.lease_seconds)
        if not final:
            # Visible while it retries: the run's last error says what goes wrong.
            runs.note_error(connection, run.id, f"batch {batch.seq} attempt {attempts}: {error}", now)
            return BatchOutcome(Outcome.RETRY, batch.id, run.id, error=error, retry_in=settings.retry_delay(attempts))
        message = f"batch {batch.seq} failed after {attempts} attempts: {error}"
        _fail_run_if_too_many(connection, backfill, run.id, message, settings)
    return BatchOutcome(Outcome.FAILED, batch.id, run.id, error=error)
