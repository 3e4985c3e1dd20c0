"""The engine's durable state: one row per run, one row per batch, the log of
every run's status changes, and every failed attempt of a batch.

These tables are defined with SQLAlchemy Core on their own MetaData so that the
engine never depends on the shop's ORM models. What a row means, its statuses and
the rules for moving a run between them are in model.py; the writes to these
tables are in runs.py and batches.py.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.model import BatchStatus, RunStatus
from backend.models.base import NAMING_CONVENTION

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Timestamp = sa.DateTime(timezone=True)


backfill_runs = sa.Table(
    "backfill_runs",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, server_default=RunStatus.PENDING.value, index=True),
    sa.Column("scheduled_by", sa.String(64), nullable=True),  # the Alembic revision, if any
    sa.Column("executor", sa.String(16), nullable=True),  # "inprocess" or "celery" once started
    sa.Column("key_type", sa.String(8), nullable=False, server_default="int"),
    sa.Column("key_min", sa.String(255), nullable=True),  # bounds fixed when the run starts
    sa.Column("key_max", sa.String(255), nullable=True),
    sa.Column("cursor", sa.String(255), nullable=True),  # last key handed to a batch
    sa.Column("batch_size", sa.Integer, nullable=False),
    sa.Column("max_parallel", sa.Integer, nullable=False, server_default="1"),
    sa.Column("rows_total", sa.BigInteger, nullable=True),
    sa.Column("rows_total_exact", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("rows_scanned", sa.BigInteger, nullable=False, server_default="0"),  # keys walked
    sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),  # rows changed
    sa.Column("batches_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("batches_failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    # Why the run is waiting or backing off (maintenance window, health check),
    # and when it will try again.
    sa.Column("wait_reason", sa.Text, nullable=True),
    sa.Column("next_window_at", _Timestamp, nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", _Timestamp, nullable=True),
    sa.Column("heartbeat_at", _Timestamp, nullable=True),
    sa.Column("created_at", _Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", _Timestamp, nullable=True),
    sa.Column("finished_at", _Timestamp, nullable=True),
    sa.Column("updated_at", _Timestamp, nullable=False, server_default=sa.func.now()),
)

backfill_batches = sa.Table(
    "backfill_batches",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("run_id", _Id, sa.ForeignKey("backfill_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    # The batch covers key_after < key <= key_end (key_min <= key for the first
    # batch, whose key_after is NULL): consecutive batches tile the key space.
    sa.Column("key_after", sa.String(255), nullable=True),
    sa.Column("key_end", sa.String(255), nullable=False),
    sa.Column("rows_in_range", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default=BatchStatus.PENDING.value),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("batch_size", sa.Integer, nullable=False),
    sa.Column("rows_affected", sa.Integer, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", _Timestamp, nullable=True),
    sa.Column("dispatched_at", _Timestamp, nullable=True),
    sa.Column("started_at", _Timestamp, nullable=True),
    sa.Column("finished_at", _Timestamp, nullable=True),
    sa.UniqueConstraint("run_id", "seq"),
    # Serves the in-flight counts and the recent-rate query of the progress endpoint.
    sa.Index("ix_backfill_batches_run_id_status", "run_id", "status", "finished_at"),
)

# Every status change of a run: who or what made it, and why.
backfill_transitions = sa.Table(
    "backfill_transitions",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("run_id", _Id, sa.ForeignKey("backfill_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", _Timestamp, nullable=False, server_default=sa.func.now()),
    # False until one process claims the change to run the backfill's hook and send
    # the notifications (announce.py), after the change committed. Rows written
    # before 0013, or by offline SQL, count as announced: they are never sent.
    sa.Column("announced", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Index("ix_backfill_transitions_unannounced", "id", postgresql_where=sa.text("NOT announced"),
             sqlite_where=sa.text("NOT announced")),
)

# Every failed attempt of a batch (an exception, a statement timeout that split it,
# a worker lost), written in the transaction that records the failure. A batch's
# `error` keeps only the last one; this keeps them all.
backfill_batch_errors = sa.Table(
    "backfill_batch_errors",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("batch_id", _Id, sa.ForeignKey("backfill_batches.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("run_id", _Id, sa.ForeignKey("backfill_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),  # the batch's attempt that failed (1 = first)
    sa.Column("error_class", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("at", _Timestamp, nullable=False, server_default=sa.func.now()),
)

# What a schema job (schema_jobs.py) runs: an index built concurrently or a constraint
# validated, scheduled by a revision and run by the engine as a run of one batch
# (the run's name is this row's `name`; its key space is this row's id).
schema_jobs = sa.Table(
    "schema_jobs",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),  # "index:<index>", "validate:<table>.<constraint>"
    sa.Column("kind", sa.String(16), nullable=False),  # "index" or "validate"
    sa.Column("table_name", sa.String(63), nullable=False),
    sa.Column("target", sa.String(63), nullable=False),  # the index or the constraint
    sa.Column("statement", sa.Text, nullable=False),  # run outside any transaction, without timeouts
    sa.Column("scheduled_by", sa.String(64), nullable=True),  # the Alembic revision
    sa.Column("created_at", _Timestamp, nullable=False, server_default=sa.func.now()),
)
