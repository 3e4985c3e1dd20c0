"""Expand: schema_jobs, the statements of the index builds and constraint validations
that revisions schedule for a maintenance window (backend/backfill/schema_jobs.py)

A new table of the engine's own, read and written only by the engine and the revision
helpers of backend.migrations.index_jobs. Each job runs as a run in backfill_runs
named after the row's `name`.

Revision ID: 0014_schema_jobs
Revises: 0013_backfill_batch_errors
Create Date: 2026-12-01 00:00:14

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0014_schema_jobs"
down_revision: Union[str, Sequence[str], None] = "0013_backfill_batch_errors"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "schema_jobs",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=63), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("scheduled_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schema_jobs"),
        sa.UniqueConstraint("name", name="uq_schema_jobs_name"),
    )


def downgrade() -> None:
    op.drop_table("schema_jobs")
