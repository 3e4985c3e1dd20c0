"""What the operations API and the status page show of the backfill engine: runs
with their progress, batches, the transition log, and the controls that apply to
each status. No Flask here: views call these functions and serialise nothing
themselves.

Cheap to poll. A run's representation costs at most two indexed queries: the run's
row by primary key, then one aggregate over the run's batches through the
(run_id, status) index, for the recent rate and the batches in flight (none for a
run that is not active), plus, for a paused or cancelled run, its latest transition
(who did it and why). Its ETag is computed from the first two, so an unchanged run
answers 304 without building the body.

The representation is a function of the run's row, its batches in flight and a
clock tick: figures that depend on time (rows per second, ETA, `measured_at`) are
measured `as of` the last RATE_TICK_SECONDS boundary, so two requests in the same
tick on an unchanged run read the same bytes, and the ETag (row + batch counts +
tick while the run is active) is honest. A run that is not active never changes
again (its `measured_at` is its last update), so its ETag has no tick.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill import controls, progress, runs, schema_job_progress, stall
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.batches import errors_of
from backend.backfill.model import Batch, BatchError, BatchStatus, Run, RunStatus, Transition
from backend.backfill.state import backfill_batches, backfill_runs

RATE_TICK_SECONDS = 5
BATCH_PAGE_DEFAULT = 50
BATCH_PAGE_MAX = 500
RUN_PAGE_DEFAULT = 50
RUN_PAGE_MAX = 200
REPRESENTATION_VERSION = "v4"  # part of every ETag: bump it when the JSON shape changes
# The statuses an operator's control leaves a run in, whose run says who and why.
CONTROLLED = (RunStatus.PAUSED, RunStatus.CANCELLED)

ScheduleFor = Callable[[str], Any]  # backfill name -> its WindowSchedule, or None when unknown


# --- time -------------------------------------------------------------------------------

def tick(now: datetime | None = None) -> datetime:
    """The last RATE_TICK_SECONDS boundary at or before `now` (UTC)."""
    now = as_utc(now or utcnow())
    seconds = int(now.timestamp()) // RATE_TICK_SECONDS * RATE_TICK_SECONDS
    return datetime.fromtimestamp(seconds, timezone.utc)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")


# --- ETags ------------------------------------------------------------------------------

def _canonical(value: Any) -> str:
    if isinstance(value, datetime):
        return iso(value) or ""
    return repr(value)


def _row_fingerprint(run: Run) -> str:
    # The whole row, so that a column the engine adds later changes the ETag too.
    return "|".join(f"{field.name}={_canonical(getattr(run, field.name))}" for field in dataclasses.fields(run))


def etag_for(rows: Sequence[Run], as_of: datetime, stats: Mapping[int, "BatchStats"], extra: str = "") -> str:
    """A strong ETag for the representation of `rows` (a run, or a list of runs): the
    rows, the batch counts read now (a claimed batch changes no run row), while a run
    is active the tick, and `extra` (what else the body depends on: a page's links).
    A run's last control needs no part: it changes the run's row."""
    digest = hashlib.sha256(REPRESENTATION_VERSION.encode() + extra.encode())
    if any(run.is_active for run in rows):
        digest.update(f"tick={iso(as_of)}".encode())
    for run in rows:
        counts = stats.get(run.id) or BatchStats()
        digest.update(b"\n" + _row_fingerprint(run).encode() + f"|{counts.in_flight}|{counts.running}|{counts.held}"
                      f"|{_canonical(counts.last_claimed_at)}|{_canonical(counts.last_finished_at)}".encode())
    return f'"{digest.hexdigest()[:40]}"'


# --- reading ----------------------------------------------------------------------------

def get_run(connection: Connection, run_id: int) -> Run:
    """The run's row; raises backend.backfill.runs.RunNotFound."""
    return runs.get_run(connection, run_id)


def latest_run(connection: Connection, name: str) -> Run:
    run = runs.latest_run(connection, name)
    if run is None:
        raise runs.RunNotFound(name)
    return run


def list_runs(connection: Connection, status: str | None = None, name: str | None = None, *,
              limit: int = RUN_PAGE_DEFAULT, before_id: int | None = None) -> tuple[list[Run], bool]:
    """A page of runs, newest first (keyset on the id: a year of runs costs what a
    day does), and whether older ones follow."""
    r = backfill_runs
    query = sa.select(r).order_by(r.c.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(r.c.status == status)
    if name is not None:
        query = query.where(r.c.name == name)
    if before_id is not None:
        query = query.where(r.c.id < before_id)
    rows = [Run.from_row(row) for row in connection.execute(query).mappings()]
    return rows[:limit], len(rows) > limit


@dataclass(frozen=True)
class BatchStats:
    in_flight: int = 0  # pending or running
    running: int = 0
    recent: progress.RecentWork = progress.RecentWork()  # the batches finished in the rate window
    # For the stall rule (backend.backfill.stall), among the batches in flight or
    # finished in the rate window (STALL_SECONDS is shorter than that window):
    held: int = 0  # running with a live lease
    last_claimed_at: datetime | None = None
    last_finished_at: datetime | None = None


def batch_stats(connection: Connection, rows: Sequence[Run], as_of: datetime) -> dict[int, BatchStats]:
    """One aggregate query over the batches of the active runs among `rows`."""
    active = [run.id for run in rows if run.is_active]
    if not active:
        return {}
    running = [run.id for run in rows if run.status == RunStatus.RUNNING]
    b = backfill_batches
    in_flight = b.c.status.in_(BatchStatus.IN_FLIGHT)
    recent = sa.and_(b.c.run_id.in_(running) if running else sa.false(), progress.in_rate_window(as_of))
    query = (
        sa.select(
            b.c.run_id,
            sa.func.sum(sa.case((in_flight, 1), else_=0)).label("in_flight"),
            sa.func.sum(sa.case((b.c.status == BatchStatus.RUNNING, 1), else_=0)).label("running"),
            sa.func.sum(sa.case((recent, b.c.rows_in_range), else_=0)).label("recent_rows"),
            sa.func.min(sa.case((recent, b.c.started_at), else_=None)).label("recent_first_start"),
            sa.func.sum(sa.case((sa.and_(b.c.status == BatchStatus.RUNNING, b.c.lease_expires_at > as_of), 1),
                                else_=0)).label("held"),
            sa.func.max(b.c.started_at).label("last_claimed_at"),
            sa.func.max(b.c.finished_at).label("last_finished_at"),
        )
        .where(b.c.run_id.in_(active), sa.or_(in_flight, recent))
        .group_by(b.c.run_id)
    )
    return {
        row.run_id: BatchStats(int(row.in_flight or 0), int(row.running or 0),
                               progress.RecentWork(int(row.recent_rows or 0), as_utc(row.recent_first_start)),
                               int(row.held or 0), as_utc(row.last_claimed_at), as_utc(row.last_finished_at))
        for row in connection.execute(query)
    }


def stall_view(run: Run, stats: BatchStats, as_of: datetime,
               stall_seconds: float = stall.STALL_SECONDS) -> dict[str, Any] | None:
    """The engine's stall rule on this reading, as of the tick: a running run nobody
    has taken a batch of for `stall_seconds` although batches wait (or none is carved)."""
    if run.status != RunStatus.RUNNING:
        return None
    activity = stall.BatchActivity(
        last_claimed_at=stats.last_claimed_at, last_finished_at=stats.last_finished_at, attempts=0,
        waiting=stats.in_flight - stats.held, held=stats.held,
        batches=run.batches_done + run.batches_failed + stats.in_flight)
    last_change = max((as_utc(t) for t in (run.started_at, run.updated_at) if t is not None), default=None)
    found = stall.stall_of(run.status, activity, last_change, as_of, executor=run.executor, seconds=stall_seconds)
    if found is None:
        return None
    return {"since": iso(found.since), "seconds": int(found.seconds), "batches_waiting": found.waiting,
            "reason": found.reason}


def control_view(row: Transition | None) -> dict[str, Any] | None:
    """Who put a paused or cancelled run in its status, when and why."""
    if row is None:
        return None
    return {"status": row.to_status, "actor": row.actor, "reason": row.reason, "at": iso(row.at)}


def run_view(run: Run, stats: BatchStats | None, as_of: datetime, schedule=None,
             last_control: Transition | None = None, stall_seconds: float = stall.STALL_SECONDS) -> dict[str, Any]:
    """The JSON representation of a run (see components.schemas.Run in the OpenAPI
    document). `schedule` is the backfill's WindowSchedule, for window-aware ETAs;
    `last_control` the transition that paused or cancelled it. A stalled run has no
    rate or ETA: nothing moves, and an old rate would pretend."""
    stats = stats or BatchStats()
    status = run.status
    stalled = stall_view(run, stats, as_of, stall_seconds)
    total = run.rows_total
    moving = progress.pace(run.rows_scanned, total, stats.recent, as_of, schedule) \
        if status == RunStatus.RUNNING and stalled is None else progress.STILL
    eta, plan = moving.eta_seconds, moving.plan
    return {
        "id": run.id,
        "name": run.name,
        "status": status,
        "executor": run.executor,
        "scheduled_by": run.scheduled_by,
        "rows_done": run.rows_done,
        "rows_scanned": run.rows_scanned,
        "rows_total": total,
        "rows_total_exact": bool(run.rows_total_exact),
        "percent": progress.percent_done(status, run.rows_scanned, total),
        "rows_per_second": moving.rows_per_second_shown,
        "eta_seconds": moving.eta_seconds_shown,
        "eta_at": iso(as_of + timedelta(seconds=eta)) if eta is not None else None,
        "windows_remaining": plan.windows if plan else None,
        "estimated_finish_at": iso(plan.finish_at) if plan else None,
        "measured_at": iso(as_of if status in RunStatus.ACTIVE else run.updated_at),
        "batch_size": run.batch_size,
        "max_parallel": run.max_parallel,
        "batches_done": run.batches_done,
        "batches_failed": run.batches_failed,
        "batches_in_flight": stats.in_flight,
        "batches_running": stats.running,
        "last_error": run.last_error,
        "wait_reason": run.wait_reason,
        "next_window_at": iso(run.next_window_at),
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "updated_at": iso(run.updated_at),
        "heartbeat_at": iso(run.heartbeat_at),
        "finished_at": iso(run.finished_at),
        "stalled": stalled,
        "last_control": control_view(last_control) if status in CONTROLLED else None,
        "actions": controls.possible(status),
    }


def runs_view(connection: Connection, rows: Sequence[Run], as_of: datetime,
              schedule_for: ScheduleFor | None = None,
              stats: Mapping[int, BatchStats] | None = None,
              stall_seconds: float = stall.STALL_SECONDS) -> list[dict[str, Any]]:
    """The runs' representations; one more query when some are paused or cancelled
    (who did it and why), read only for a body that is sent (never for a 304)."""
    stats = batch_stats(connection, rows, as_of) if stats is None else stats
    controlled = runs.transitions_into(connection, {run.id: run.status for run in rows if run.status in CONTROLLED})
    views = [run_view(run, stats.get(run.id), as_of,
                      schedule_for(run.name) if schedule_for and run.status == RunStatus.RUNNING else None,
                      controlled.get(run.id), stall_seconds)
             for run in rows]
    for run, body in zip(rows, views):
        # A schema job's run: its statement and, while it builds, the build's progress
        # (two more queries per job; None, and no query, for a backfill's run). The
        # tick in an active run's ETag keeps that progress at most one tick old.
        body["job"] = schema_job_progress.job_view(connection, run)
    return views


def batch_view(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "seq": batch.seq,
        "status": batch.status,
        "key_after": batch.key_after,
        "key_end": batch.key_end,
        "rows_in_range": batch.rows_in_range,
        "rows_affected": batch.rows_affected,
        "batch_size": batch.batch_size,
        "attempts": batch.attempts,
        "duration_ms": batch.duration_ms,
        "error": batch.error,
        "claimed_by": batch.claimed_by,
        "dispatched_at": iso(batch.dispatched_at),
        "started_at": iso(batch.started_at),
        "finished_at": iso(batch.finished_at),
        "lease_expires_at": iso(batch.lease_expires_at),
    }


def batches_page(connection: Connection, run_id: int, *, status: str | None, limit: int,
                 after_seq: int | None) -> dict[str, Any]:
    """Batches in `seq` order, keyset-paginated: `next_cursor` is the last seq of
    the page when more may follow."""
    b = backfill_batches
    query = sa.select(b).where(b.c.run_id == run_id).order_by(b.c.seq).limit(limit + 1)
    if status is not None:
        query = query.where(b.c.status == status)
    if after_seq is not None:
        query = query.where(b.c.seq > after_seq)
    batches = [Batch.from_row(row) for row in connection.execute(query).mappings()]
    more = len(batches) > limit
    batches = batches[:limit]
    errors = errors_of(connection, [batch.id for batch in batches])  # one more query, for the page
    return {
        "items": [batch_view(batch) | {"errors": [batch_error_view(error) for error in errors[batch.id]]}
                  for batch in batches],
        "next_cursor": str(batches[-1].seq) if more else None,
    }


def batch_error_view(error: BatchError) -> dict[str, Any]:
    """One failed attempt of a batch (backfill_batch_errors)."""
    return {"attempt": error.attempt, "error_class": error.error_class, "message": error.message,
            "at": iso(error.at)}


def transition_view(row: Transition) -> dict[str, Any]:
    return {
        "id": row.id,
        "from_status": row.from_status,
        "to_status": row.to_status,
        "actor": row.actor,
        "reason": row.reason,
        "at": iso(row.at),
    }


def transitions_view(connection: Connection, run_id: int) -> list[dict[str, Any]]:
    runs.get_run(connection, run_id)
    return [transition_view(row) for row in runs.transitions(connection, run_id)]
