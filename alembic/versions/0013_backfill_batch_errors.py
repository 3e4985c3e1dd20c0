"""Expand: backfill_batch_errors and backfill_transitions.announced (batch error history, hooks)

backfill_batch_errors keeps every failed attempt of a batch; `announced` marks a
run's status change handed to its hooks and notifications, once. Both belong to the
engine alone. Existing transitions get announced = true (the column's default), so
that the first process after the upgrade does not send the whole history again; the
engine writes false for each new change, and the one process that claims it sets it
back to true.

Revision ID: 0013_backfill_batch_errors
Revises: 0012_prices_bigint_cleanup
Create Date: 2026-12-01 00:00:13

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.online import create_index, drop_index

revision: str = "0013_backfill_batch_errors"
down_revision: Union[str, Sequence[str], None] = "0012_prices_bigint_cleanup"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "backfill_batch_errors",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("batch_id", BigIntPK, nullable=False),
        sa.Column("run_id", BigIntPK, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["backfill_batches.id"], ondelete="CASCADE",
                                name="fk_backfill_batch_errors_batch_id_backfill_batches"),
        sa.ForeignKeyConstraint(["run_id"], ["backfill_runs.id"], ondelete="CASCADE",
                                name="fk_backfill_batch_errors_run_id_backfill_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_backfill_batch_errors"),
    )
    op.create_index("ix_backfill_batch_errors_batch_id", "backfill_batch_errors", ["batch_id"])
    op.create_index("ix_backfill_batch_errors_run_id", "backfill_batch_errors", ["run_id"])
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("backfill_transitions",
                  sa.Column("announced", sa.Boolean(), server_default=sa.true(), nullable=False))
    # The claim's lookup of changes not announced yet: a few rows, however long the log.
    create_index("ix_backfill_transitions_unannounced", "backfill_transitions", ["id"], where="NOT announced")


def downgrade() -> None:
    drop_index("ix_backfill_transitions_unannounced", "backfill_transitions")
    with op.batch_alter_table("backfill_transitions") as batch_op:
        batch_op.drop_column("announced")
    op.drop_index("ix_backfill_batch_errors_run_id", table_name="backfill_batch_errors")
    op.drop_index("ix_backfill_batch_errors_batch_id", table_name="backfill_batch_errors")
    op.drop_table("backfill_batch_errors")
