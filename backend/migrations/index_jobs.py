"""Revision helpers for schema jobs: schedule an index build or a constraint
validation to run later, in a maintenance window, and gate the revision that needs it.

    from backend.migrations.index_jobs import require_index, schedule_index, unschedule_index

    # revision A: instead of building the index at deploy time
    def upgrade():
        schedule_index("ix_orders_placed_at", "orders", ["placed_at"], revision=revision)

    def downgrade():
        unschedule_index("ix_orders_placed_at", "orders")  # history stays; the index goes

    # revision B, which needs it (a unique constraint USING INDEX, a query plan...)
    def upgrade():
        require_index("ix_orders_placed_at", revision=revision)   # first statement
        ...

On PostgreSQL the schedule records the job's statement and a pending run in the
migration's transaction; the workers (or `run_migrations.py --batched` in-process)
build it concurrently inside the maintenance windows (backend/backfill/schema_jobs.py).
The gate raises IndexNotBuilt, a BackfillNotFinished: plain `alembic upgrade head`
stops with one line naming the job, `--batched` runs the job and retries. On a fresh
database (the job never ran, its table is empty) the gate builds the index (or
validates) itself.

On SQLite the index is built at once, in the revision (a development database is
small), so the gate passes; validations are no-ops there (SQLite has no NOT VALID).
Offline (`alembic upgrade --sql`) the script builds the index concurrently in place
(online.create_index) or validates, where the revision schedules it: a DBA running a
script runs it in order.
"""
from __future__ import annotations

from typing import Sequence

from alembic import op

from backend.backfill import runs, schema_jobs
from backend.backfill.clock import utcnow
from backend.backfill.model import RunStatus
from backend.migrations import context, online
from backend.migrations.backfill_ops import FINISH_COMMAND, BackfillNotFinished, unschedule_backfill


class IndexNotBuilt(BackfillNotFinished):
    """A gate on a schema job. A BackfillNotFinished, so that `--batched` runs the job
    (its name is the run's) and retries the revision; the message names the index."""

    def __init__(self, revision: str | None, names: list[str], details: list[str]):
        self.revision, self.names, self.details = revision, names, details
        where = f"revision {revision}" if revision else "this revision"
        Exception.__init__(self, f"{where} requires schema job {', '.join(names)} to be finished "
                                 f"({'; '.join(details)}). Finish it with: {FINISH_COMMAND}")


# --- indexes -----------------------------------------------------------------------------

def index_statement(name: str, table: str, columns: Sequence[str], *, unique: bool = False,
                    where: str | None = None) -> str:
    predicate = f" WHERE {where}" if where else ""
    return (f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY {context.quote(name)} ON {context.quote(table)} "
            f"({', '.join(context.quote(column) for column in columns)}){predicate}")


def schedule_index(name: str, table: str, columns: Sequence[str], *, unique: bool = False,
                   where: str | None = None, revision: str | None = None) -> None:
    """Build `name` on `table` later, concurrently, in a maintenance window."""
    if context.dialect_name() != "postgresql" or context.is_offline():
        online.create_index(name, table, columns, unique=unique, where=where)
        return
    schema_jobs.define(op.get_bind(), schema_jobs.index_job_name(name), kind=schema_jobs.INDEX, table=table,
                       target=name, statement=index_statement(name, table, columns, unique=unique, where=where),
                       scheduled_by=revision)


def unschedule_index(name: str, table: str, *, revision: str | None = None) -> None:
    """The downgrade of schedule_index: the job's unfinished run is cancelled (its runs
    stay, as history, like a backfill's: unschedule_backfill), and the index is dropped
    if it was built (concurrently on PostgreSQL: this commits what the downgrade did
    before it). A later upgrade schedules a fresh run."""
    if context.dialect_name() == "postgresql":
        unschedule_backfill(schema_jobs.index_job_name(name), revision=revision)
    online.drop_index(name, table)


def require_index(name: str, *, revision: str | None = None) -> None:
    """Stop the upgrade unless index `name` exists and is valid. A pending job whose
    index is already valid (built by hand, or a fresh database) is completed here."""
    if context.is_offline():
        return  # the script built it where it was scheduled
    job = schema_jobs.index_job_name(name)
    connection = op.get_bind()
    if context.dialect_name() != "postgresql":
        if connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).first() is None:
            raise IndexNotBuilt(revision, [job], [f"{job}: index {name} does not exist"])
        return
    state = schema_jobs.index_state(connection, name)
    if state != "valid" and _ran_on_an_empty_table(connection, job, invalid_index=state == "invalid"):
        _gate(connection, job, done=True, missing="", what=f"index {name}", revision=revision,
              done_reason="built by the gate: its table was empty")
        return
    _gate(connection, job, done=state == "valid",
          missing="is INVALID (a build failed or is under way)" if state == "invalid" else "does not exist yet",
          what=f"index {name}", revision=revision)


def _ran_on_an_empty_table(connection, job: str, *, invalid_index: bool = False) -> bool:
    """A fresh database: the job never ran and its table is empty, so its build (or
    validation) is instant; run it here (outside the transaction all the same) rather
    than stop the upgrade, as require_backfill completes a backfill with no row to do."""
    run = runs.latest_run(connection, job)
    found = schema_jobs.definition(connection, job)
    if run is None or run.status != RunStatus.PENDING or found is None:
        return False
    if connection.exec_driver_sql(f"SELECT 1 FROM {context.quote(found.table_name)} LIMIT 1").first() is not None:
        return False
    with online.outside_transaction():
        if invalid_index:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {context.quote(found.target)}")
        op.execute(found.statement)
    return True


# --- constraints -------------------------------------------------------------------------

def schedule_validation(table: str, constraint: str, *, revision: str | None = None) -> None:
    """VALIDATE CONSTRAINT later, in a maintenance window. The constraint must exist,
    added NOT VALID (an instant lock) earlier in the revision."""
    if context.dialect_name() != "postgresql":
        return
    statement = f"ALTER TABLE {context.quote(table)} VALIDATE CONSTRAINT {context.quote(constraint)}"
    if context.is_offline():
        with online.outside_transaction():
            op.execute(statement)
        return
    schema_jobs.define(op.get_bind(), schema_jobs.validation_job_name(table, constraint), kind=schema_jobs.VALIDATE,
                       table=table, target=constraint, statement=statement, scheduled_by=revision)


def unschedule_validation(table: str, constraint: str, *, revision: str | None = None) -> None:
    """The job's unfinished run is cancelled, its runs kept (the downgrade drops the
    constraint itself, if it added it)."""
    if context.dialect_name() == "postgresql":
        unschedule_backfill(schema_jobs.validation_job_name(table, constraint), revision=revision)


def require_validation(table: str, constraint: str, *, revision: str | None = None) -> None:
    """Stop the upgrade until the constraint is validated (PostgreSQL)."""
    if context.dialect_name() != "postgresql" or context.is_offline():
        return
    connection = op.get_bind()
    validated = schema_jobs.constraint_validated(connection, table, constraint)
    job = schema_jobs.validation_job_name(table, constraint)
    if validated is False and _ran_on_an_empty_table(connection, job):
        _gate(connection, job, done=True, missing="", what=f"constraint {constraint} on {table}", revision=revision,
              done_reason="validated by the gate: its table was empty")
        return
    _gate(connection, job, done=bool(validated),
          missing="is NOT VALID yet" if validated is False else "does not exist",
          what=f"constraint {constraint} on {table}", revision=revision)


def _gate(connection, job: str, *, done: bool, missing: str, what: str, revision: str | None,
          done_reason: str = "it was already there") -> None:
    run = runs.latest_run(connection, job)
    if done:
        if run is not None and run.status == RunStatus.PENDING:
            runs.transition(connection, run.id, RunStatus.COMPLETED, actor="alembic gate",
                            reason=f"{what}: {done_reason}", started_at=utcnow())
        return
    if run is None:
        detail = f"{what} {missing} and no revision scheduled it"
    else:
        waits = f" ({run.wait_reason})" if run.wait_reason else ""
        detail = f"run {run.id} is {run.status}{waits}, {what} {missing}"
    raise IndexNotBuilt(revision, [job], [f"{job}: {detail}"])
