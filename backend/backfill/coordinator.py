"""Starting a run and handing out its next batches.

`advance` is called after every batch (by whichever process finished it; a Celery
worker calls `advance_in` inside the batch's own transaction) and by the periodic
recovery: under the run's row lock it carves new key ranges from the cursor, up to
`max_parallel` batches in flight, and completes the run when the key space is
exhausted and every batch succeeded. The cursor only moves in that same
transaction, together with the batch rows it creates, so it is never lost.
"""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backend.backfill import batches, batching, runs
from backend.backfill.registry import Catalog
from backend.backfill.clock import utcnow
from backend.backfill.keys import decode_key, encode_key
from backend.backfill.optimizer import BatchSample, next_batch_size
from backend.backfill.policy import RunPolicy
from backend.backfill.settings import EngineSettings
from backend.backfill.model import BatchStatus, Run, RunStatus
from backend.backfill.state import backfill_batches, backfill_runs
from backend.db import write_transaction
from backend.metrics import events

SIZING_SAMPLES = 10


def start_run(engine: Engine, catalog: Catalog, run_id: int, *, executor: str) -> Run:
    """pending -> running, fixing the key bounds; an empty table completes at once."""
    with engine.begin() as connection:
        run = runs.lock_run(connection, run_id)
        if run.status != RunStatus.PENDING:
            if run.executor != executor and run.is_active:
                runs.set_executor(connection, run_id, executor)
            return runs.get_run(connection, run_id)
        backfill = catalog.get(run.name)
        bounds = batching.key_bounds(connection, backfill)
        now = utcnow()
        if bounds is None:
            run = runs.transition(connection, run_id, RunStatus.COMPLETED, reason="the table is empty",
                                  executor=executor, started_at=now, rows_total=0, rows_total_exact=True)
            return run
        run = runs.transition(
            connection, run_id, RunStatus.RUNNING, actor=f"executor {executor}", reason="started",
            executor=executor, started_at=now, heartbeat_at=now,
            key_min=encode_key(bounds.key_min), key_max=encode_key(bounds.key_max),
            rows_total=bounds.rows_total, rows_total_exact=bounds.exact,
        )
        return run


def advance(engine: Engine, catalog: Catalog, run_id: int, settings: EngineSettings | None = None) -> list[int]:
    """Carve the next batches of a running run and return their ids to dispatch.

    When nothing is left to carve and no batch is in flight, the run ends:
    completed, or failed if some batches failed (within the tolerated share)."""
    with engine.begin() as connection:
        return advance_in(connection, catalog, run_id, settings or EngineSettings())


def advance_in(connection: Connection, catalog: Catalog, run_id: int, settings: EngineSettings) -> list[int]:
    """`advance` inside the caller's transaction. A Celery worker calls it in the
    transaction of the batch it just finished: one transaction (and one wait for
    the run's row lock) per batch instead of two."""
    run = runs.lock_run(connection, run_id)
    if run.status != RunStatus.RUNNING:
        return []
    in_flight = _count_batches(connection, run_id, BatchStatus.PENDING, BatchStatus.RUNNING)
    slots = max(run.max_parallel, 1) - in_flight
    new_ids = _carve(connection, catalog, run, slots=slots, settings=settings) if slots > 0 else []
    if not new_ids and in_flight == 0:  # nothing left after the cursor
        failed = _count_batches(connection, run_id, BatchStatus.FAILED)
        if failed:
            runs.transition(connection, run_id, RunStatus.FAILED,
                            reason=f"{failed} batch(es) failed; retry them once the cause is fixed")
        else:
            runs.transition(connection, run_id, RunStatus.COMPLETED, reason="every batch succeeded")
    return new_ids


def _count_batches(connection: Connection, run_id: int, *statuses: str) -> int:
    """Answered from the (run_id, status) index: a few entries, however long the run."""
    return connection.execute(
        sa.select(sa.func.count())
        .select_from(backfill_batches)
        .where(backfill_batches.c.run_id == run_id, backfill_batches.c.status.in_(statuses))
    ).scalar_one()


def _next_batch_size(connection: Connection, run, policy: RunPolicy) -> int:
    """The run's batch size, adapted to the target duration from its recent batches."""
    if policy.sizing is None:
        return run.batch_size
    recent = connection.execute(
        sa.select(backfill_batches.c.rows_in_range, backfill_batches.c.duration_ms)
        .where(backfill_batches.c.run_id == run.id, backfill_batches.c.status == BatchStatus.SUCCEEDED)
        .order_by(backfill_batches.c.finished_at.desc())
        .limit(SIZING_SAMPLES)
    ).all()
    samples = [BatchSample(rows, ms / 1000.0) for rows, ms in reversed(recent) if ms is not None]
    return next_batch_size(run.batch_size, samples, policy.sizing)


def _carve(connection: Connection, catalog: Catalog, run, *, slots: int, settings: EngineSettings) -> list[int]:
    backfill = catalog.get(run.name)
    size = _next_batch_size(connection, run, RunPolicy.of(backfill, settings))
    key_type = run.key_type
    cursor = decode_key(key_type, run.cursor)
    key_min, key_max = decode_key(key_type, run.key_min), decode_key(key_type, run.key_max)
    seq = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(backfill_batches.c.seq), 0)).where(backfill_batches.c.run_id == run.id)
    ).scalar_one()
    now = utcnow()
    new_ids: list[int] = []
    for _ in range(slots):
        carved = batching.next_range(connection, backfill, after=cursor, key_min=key_min, key_max=key_max,
                                     size=size)
        if carved is None:
            break
        seq += 1
        new_ids.append(batches.add_batch(connection, run_id=run.id, seq=seq, key_after=encode_key(cursor),
                                         key_end=encode_key(carved.end), rows_in_range=carved.rows,
                                         batch_size=size, now=now))
        cursor = carved.end
    if new_ids:
        runs.move_cursor(connection, run.id, encode_key(cursor), size, now)
    return new_ids


def dispatchable_batches(engine: Engine, run_id: int, *, older_than_seconds: float | None = None) -> list[int]:
    """Pending batches of a running run (optionally only those handed out longer
    ago than `older_than_seconds`), marked as handed out again now."""
    now = utcnow()
    with write_transaction(engine) as connection:
        query = (
            sa.select(backfill_batches.c.id)
            .join(backfill_runs, backfill_runs.c.id == backfill_batches.c.run_id)
            .where(
                backfill_batches.c.run_id == run_id,
                backfill_batches.c.status == BatchStatus.PENDING,
                backfill_runs.c.status == RunStatus.RUNNING,
            )
            .order_by(backfill_batches.c.seq)
        )
        if older_than_seconds is not None:
            cutoff = now - timedelta(seconds=older_than_seconds)
            query = query.where(
                sa.or_(backfill_batches.c.dispatched_at.is_(None), backfill_batches.c.dispatched_at < cutoff)
            )
        ids = [row.id for row in connection.execute(query)]
        if ids:
            batches.mark_dispatched(connection, ids, now)
        return ids


def release_expired_leases(engine: Engine, run_id: int) -> int:
    """Batches whose worker vanished (lease expired) go back to pending, marked as
    not handed out, so that the next recovery dispatches them at once."""
    now = utcnow()
    with engine.begin() as connection:
        return events.lease_taken_over(batches.release_expired_leases(connection, run_id, now))
