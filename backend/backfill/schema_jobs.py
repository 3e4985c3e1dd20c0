"""Schema jobs: an index built concurrently, or a constraint validated, as a run.

A revision that would build a big index at deploy time schedules it instead
(backend.migrations.index_jobs: `schedule_index`, `schedule_validation`), and the
revision that needs it gates on it (`require_index`). The job is then run by the
engine like a backfill, because it IS a run in backfill_runs:

- its run is named after the job (`index:<index>`, `validate:<table>.<constraint>`),
  and its key space is the job's one row in `schema_jobs` (which holds the statement):
  a run of exactly one batch, and that batch is one attempt at a time;
- so everything that drives, shows and controls runs works unchanged: the in-process
  lanes and `--batched`, the Celery workers and the beat's recovery, the maintenance
  windows and health checks (admission.py, before each attempt), retries with
  back-off and the attempt limit (runner.py), pause / resume / cancel / retry
  (controls.py and the transition table), `--status`, the operations API and the
  status page. A separate kind of job with its own table of statuses would have
  needed each of them twice.

What differs is how the batch does its work: `CREATE INDEX CONCURRENTLY` cannot run
inside a transaction, so the job runs its statement on an autocommit connection of
its own, before the transaction that records the batch's success
(`outside_transaction`). The backfill invariant is kept by idempotence instead of
atomicity: an attempt first looks at the index (valid: done; INVALID, from a failed or
killed build: dropped) or the constraint (validated: done), so a second attempt after
a crash between the build and its done record does nothing twice. While it builds, the
attempt renews its batch lease, so no second attempt starts beside it, and its
connection is named `application_name = schema job <run id>`, by which
schema_job_progress.py finds its row in `pg_stat_progress_create_index`.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backend.backfill import batches, runs
from backend.backfill.clock import utcnow
from backend.backfill.definition import Backfill
from backend.backfill.model import Batch, Run
from backend.backfill.registry import catalog
from backend.backfill.settings import EngineSettings
from backend.backfill.state import schema_jobs

log = logging.getLogger(__name__)

INDEX, VALIDATE = "index", "validate"
PREFIXES = {INDEX: "index:", VALIDATE: "validate:"}


def index_job_name(index: str) -> str:
    return f"{PREFIXES[INDEX]}{index}"


def validation_job_name(table: str, constraint: str) -> str:
    return f"{PREFIXES[VALIDATE]}{table}.{constraint}"


def is_schema_job(name: str) -> bool:
    return name.startswith(tuple(PREFIXES.values()))


def application_name(run_id: int) -> str:
    return f"schema job {run_id}"


@dataclass(frozen=True)
class JobDefinition:
    """One row of schema_jobs."""

    name: str
    kind: str
    table_name: str
    target: str
    statement: str
    scheduled_by: str | None


# --- the definitions, written by the revisions in their own transaction ----------------

def define(connection: Connection, name: str, *, kind: str, table: str, target: str, statement: str,
           scheduled_by: str | None) -> int:
    """Record (or replace) the job's statement and return a pending run of it (its
    active run if it has one), in the caller's transaction."""
    connection.execute(sa.delete(schema_jobs).where(schema_jobs.c.name == name))
    connection.execute(sa.insert(schema_jobs).values(name=name, kind=kind, table_name=table, target=target,
                                                     statement=statement, scheduled_by=scheduled_by))
    active = [run for run in runs.list_runs(connection, name=name) if run.is_active]
    if active:
        return active[-1].id
    return runs.create_run(connection, name, batch_size=1, max_parallel=1, key_type="int",
                           scheduled_by=scheduled_by)


def definition(connection: Connection, name: str) -> JobDefinition | None:
    row = connection.execute(sa.select(schema_jobs).where(schema_jobs.c.name == name)).mappings().first()
    if row is None:
        return None
    return JobDefinition(row["name"], row["kind"], row["table_name"], row["target"], row["statement"],
                         row["scheduled_by"])


# --- the state of the index or constraint, in PostgreSQL's catalog ---------------------

def index_state(connection: Connection, index: str) -> str | None:
    """'valid', 'invalid' (a build failed, was killed, or is under way) or None (absent)."""
    valid = connection.execute(sa.text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"), {"name": index}).scalar()
    return None if valid is None else ("valid" if valid else "invalid")


def constraint_validated(connection: Connection, table: str, constraint: str) -> bool | None:
    """True once validated, False while NOT VALID, None when there is no such constraint."""
    return connection.execute(sa.text(
        "SELECT convalidated FROM pg_constraint WHERE conname = :name AND conrelid = to_regclass(:table)"),
        {"name": constraint, "table": table}).scalar()


# --- the job as the engine runs it -------------------------------------------------------

class SchemaJob(Backfill):
    """The backfill face of every schema job: one key (its schema_jobs row), one batch,
    whose work is done outside any transaction by `process_outside`."""

    key = "id"
    batch_size = 1
    max_parallel = 1  # one attempt at a time
    max_attempts = 3
    outside_transaction = True

    def process(self, connection: Connection, key_range) -> int:
        raise TypeError(f"{self.name} is a schema job: it runs outside any transaction (no dry run)")

    def process_outside(self, engine: Engine, batch: Batch, run: Run, token: str,
                        settings: EngineSettings) -> int:
        """Build the index (validate the constraint) unless it is done already; 1 when
        this attempt did the work, 0 when it found it done."""
        with engine.connect() as connection:
            found = definition(connection, self.name)
        if found is None:
            raise LookupError(f"schema job {self.name} has no definition (it was unscheduled)")
        with _autocommit(engine, run.id) as connection, _renewing_lease(engine, batch.id, token, settings):
            if found.kind == INDEX:
                return _build_index(connection, found, run.id)
            return _validate(connection, found)


def _build_index(connection: Connection, job: JobDefinition, run_id: int) -> int:
    state = index_state(connection, job.target)
    if state == "valid":
        return 0
    if state == "invalid":  # our lease says no attempt of ours is building it: a leftover
        _end_lost_attempts(connection, run_id)
        _drop(connection, job.target)
    try:
        connection.exec_driver_sql(job.statement)
    except Exception:
        _drop_invalid_after_failure(connection, job.target)
        raise
    return 1


def _validate(connection: Connection, job: JobDefinition) -> int:
    validated = constraint_validated(connection, job.table_name, job.target)
    if validated is None:
        raise LookupError(f"constraint {job.target} on {job.table_name} does not exist "
                          "(add it NOT VALID before scheduling its validation)")
    if validated:
        return 0
    connection.exec_driver_sql(job.statement)
    return 1


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _drop(connection: Connection, index: str) -> None:
    connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(connection, index)}")


def _drop_invalid_after_failure(connection: Connection, index: str) -> None:
    """A failed build leaves an INVALID index that every write still maintains: drop it
    now (the next attempt would too, but not before its back-off)."""
    try:
        if index_state(connection, index) == "invalid":
            _drop(connection, index)
    except sa.exc.DBAPIError as exc:  # the build's own error is the one to report
        log.warning("could not drop the INVALID index %s after a failed build: %s", index, exc)


def _end_lost_attempts(connection: Connection, run_id: int) -> None:
    """An attempt whose worker died may leave its backend building on the server: end
    it, or dropping its INVALID index would wait for it (and the build go on)."""
    connection.execute(sa.text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": application_name(run_id)})


@contextlib.contextmanager
def _autocommit(engine: Engine, run_id: int) -> Iterator[Connection]:
    """A connection outside any transaction (CONCURRENTLY requires it) with no statement
    or lock timeout (the build's locks queue no shop statement), named for
    schema_job_progress.build_progress."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SET application_name = '{application_name(run_id)}'")
            connection.exec_driver_sql("SET statement_timeout = 0")
            connection.exec_driver_sql("SET lock_timeout = 0")
        try:
            yield connection
        finally:
            if connection.dialect.name == "postgresql":
                _reset(connection)


def _reset(connection: Connection) -> None:
    """The pooled connection goes back as it came (its name and timeouts)."""
    try:
        for setting in ("application_name", "statement_timeout", "lock_timeout"):
            connection.exec_driver_sql(f"RESET {setting}")
    except sa.exc.DBAPIError:  # a lost connection: the pool must not hand it out again
        connection.invalidate()


@contextlib.contextmanager
def _renewing_lease(engine: Engine, batch_id: int, token: str, settings: EngineSettings) -> Iterator[None]:
    """Renew the attempt's batch lease every third of it while the statement runs: a
    build outlives any lease, and an expired one would let the recovery start a
    second attempt beside it."""
    stop = threading.Event()
    every = max(settings.lease_seconds / 3, 0.1)

    def renew() -> None:
        while not stop.wait(every):
            try:
                with engine.begin() as connection:
                    batches.renew_lease(connection, batch_id, token, utcnow(), settings.lease_seconds)
            except sa.exc.DBAPIError as exc:  # the next tick tries again
                log.warning("schema job: could not renew the lease of batch %s: %s", batch_id, exc)

    thread = threading.Thread(target=renew, name=f"schema-job-lease-{batch_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _job_backfill(name: str) -> SchemaJob:
    """The SchemaJob named `name`; its key space is its own definition row."""
    own_row = sa.select(schema_jobs.c.id).where(schema_jobs.c.name == name).subquery("schema_job")
    qualname = "SchemaJob_" + "".join(c if c.isalnum() else "_" for c in name)
    cls = type(qualname, (SchemaJob,), {"name": name, "table": own_row, "__qualname__": qualname,
                                        "description": f"schema job {name}"})
    return cls()


catalog.add_family(tuple(PREFIXES.values()), _job_backfill)
