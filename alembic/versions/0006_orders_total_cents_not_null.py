"""Contract: orders.total_cents NOT NULL, once the orders_total_cents backfill is finished

Revision ID: 0006_orders_total_not_null
Revises: 0005_users_email_normalized
Create Date: 2026-11-24 00:00:06

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import require_backfill
from backend.migrations.online import set_not_null

revision: str = "0006_orders_total_not_null"
down_revision: Union[str, Sequence[str], None] = "0005_users_email_normalized"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def upgrade() -> None:
    require_backfill("orders_total_cents", revision=revision)
    # A CHECK validated while the shop writes, then SET NOT NULL without a scan.
    set_not_null("orders", "total_cents", existing_type=sa.BigInteger())


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("total_cents", existing_type=sa.BigInteger(), nullable=True)
