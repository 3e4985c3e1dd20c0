"""Helpers for Alembic revisions: schedule a backfill, unschedule it, and gate a
later revision on its completion (expand -> backfill -> contract).

    def upgrade():
        op.add_column("orders", sa.Column("total_cents", sa.BigInteger()))
        schedule_backfill("orders_total_cents")

    def downgrade():
        unschedule_backfill("orders_total_cents", revision=revision)
        op.drop_column("orders", "total_cents")

    # a later revision
    def upgrade():
        require_backfill("orders_total_cents")   # first statement
        ...

They run on the migration's own connection, so the pending run is recorded in the
migration's own transaction. In offline mode (`alembic upgrade --sql`) they write
the equivalent SQL into the script instead (backend.migrations.offline).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

from backend.backfill import runs
from backend.backfill.clock import utcnow
from backend.backfill.registry import load_catalog
from backend.backfill.model import RunStatus
from backend.migrations import context, offline, run_config

FINISH_COMMAND = "python run_migrations.py --batched"
UNSCHEDULE_ACTOR = "alembic downgrade"


class BackfillNotFinished(CommandError):
    """Raised by a gate; Alembic's CLI prints the message on one line and exits 1.
    `run_migrations.py --batched` catches it, finishes the backfills, and retries."""

    def __init__(self, revision: str | None, names: list[str], details: list[str]):
        self.revision, self.names, self.details = revision, names, details
        where = f"revision {revision}" if revision else "this revision"
        super().__init__(
            f"{where} requires backfill {', '.join(names)} to be finished ({'; '.join(details)}). "
            f"Finish it with: {FINISH_COMMAND}"
        )


def _catalog():
    return load_catalog(run_config.current().backfill_modules)


def schedule_backfill(name: str, *, revision: str | None = None) -> None:
    """Record a pending run of `name` in the migration's transaction."""
    backfill = _catalog().get(name)
    if context.is_offline():
        op.execute(offline.schedule_statement(name, backfill, revision))
        return
    connection = op.get_bind()
    active = [r for r in runs.list_runs(connection, name=name) if r.is_active]
    if not active:
        runs.create_run(connection, name, batch_size=backfill.batch_size, max_parallel=backfill.max_parallel,
                        key_type=backfill.key_type, scheduled_by=revision)


def unschedule_reason(revision: str | None) -> str:
    return f"unscheduled by downgrade of {revision}" if revision else "unscheduled by a downgrade"


def unschedule_backfill(name: str, *, revision: str | None = None) -> None:
    """The downgrade of the revision that scheduled `name`: its unfinished runs are
    cancelled, with the reason in their transition log; every run, batch and
    transition stays (history). A later upgrade schedules a fresh run (no run of
    `name` is active any more), and the gates judge that one (the latest)."""
    if context.is_offline():
        for statement in offline.unschedule_statements(name, unschedule_reason(revision)):
            op.execute(statement)
        return
    connection = op.get_bind()
    for run in runs.list_runs(connection, name=name):
        if run.is_active:
            runs.transition(connection, run.id, RunStatus.CANCELLED, actor=UNSCHEDULE_ACTOR,
                            reason=unschedule_reason(revision), wait_reason=None, next_window_at=None)


def rows_needing_work(connection, name: str, *, limit: int | None = None) -> int:
    """How many rows the backfill's pending filter still finds (up to `limit`). A
    backfill without a pending filter cannot tell done rows from the others: every
    row of its table counts."""
    backfill = _catalog().get(name)
    keys = sa.select(backfill.key_column)
    pending = backfill.pending_filter()
    if pending is not None:
        keys = keys.where(pending)
    if limit is not None:
        keys = keys.limit(limit)
    return int(connection.execute(sa.select(sa.func.count()).select_from(keys.subquery())).scalar_one())


def require_backfill(*names: str, revision: str | None = None) -> None:
    """Stop the upgrade unless every named backfill is finished, by status AND data.

    A run still pending with no row left to do (a fresh or empty database) is
    completed here; a completed run whose filter still finds rows is reported."""
    if context.is_offline():
        catalog = _catalog()
        named = {name: catalog.get(name) for name in names}
        op.execute(offline.verbatim(offline.gate_block(named, revision, FINISH_COMMAND)))
        return
    connection = op.get_bind()
    unfinished, details = [], []
    for name in names:
        problem = _gate_problem(connection, name)
        if problem:
            unfinished.append(name)
            details.append(f"{name}: {problem}")
    if unfinished:
        raise BackfillNotFinished(revision, unfinished, details)


def _gate_problem(connection, name: str) -> str | None:
    run = runs.latest_run(connection, name)
    left = rows_needing_work(connection, name, limit=1_000_000)
    shown = f"{left:,}" if left < 1_000_000 else "over 1,000,000"
    if run is None:
        return None if left == 0 else f"never scheduled and {shown} rows need work"
    status = run.status
    if status == RunStatus.COMPLETED and (left == 0 or _catalog().get(name).pending_filter() is None):
        return None  # without a pending filter, the completed run is the only proof
    if status == RunStatus.PENDING and left == 0:
        runs.transition(connection, run.id, RunStatus.COMPLETED, actor="alembic gate",
                        reason="no row needed work", started_at=utcnow(), rows_total=0, rows_total_exact=True)
        return None
    if status == RunStatus.COMPLETED:
        return f"run {run.id} completed but {shown} rows still need work"
    return f"run {run.id} is {status}, {shown} rows still need work"
