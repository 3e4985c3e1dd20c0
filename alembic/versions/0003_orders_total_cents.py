"""Expand: orders.total_cents, nullable, filled by the orders_total_cents backfill

Revision ID: 0003_orders_total_cents
Revises: 0002_backfill_state
Create Date: 2026-11-24 00:00:03

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import schedule_backfill, unschedule_backfill

revision: str = "0003_orders_total_cents"
down_revision: Union[str, Sequence[str], None] = "0002_backfill_state"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("total_cents", sa.BigInteger(), nullable=True))
    schedule_backfill("orders_total_cents", revision=revision)


def downgrade() -> None:
    unschedule_backfill("orders_total_cents", revision=revision)
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("total_cents")
