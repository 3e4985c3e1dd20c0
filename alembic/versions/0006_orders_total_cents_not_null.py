"""Contract: orders.total_cents NOT NULL, once the orders_total_cents backfill is finished

Revision ID: 0006_orders_total_not_null
Revises: 0005_users_email_normalized
Create Date: 2026-11-24 00:00:06

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.backfill.ops import require_backfill

revision: str = "0006_orders_total_not_null"
down_revision: Union[str, Sequence[str], None] = "0005_users_email_normalized"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHECK = "ck_orders_total_cents_not_null"


def upgrade() -> None:
    require_backfill("orders_total_cents", revision=revision)
    if op.get_context().dialect.name == "postgresql":
        # SET NOT NULL alone scans the table under an ACCESS EXCLUSIVE lock; a
        # validated CHECK lets PostgreSQL skip that scan. Adding it NOT VALID takes
        # that lock only for an instant, and only if the transaction ends there:
        # VALIDATE runs in a transaction of its own, under a SHARE UPDATE EXCLUSIVE
        # lock, so the shop keeps reading and writing orders while it scans.
        op.execute(f"ALTER TABLE orders DROP CONSTRAINT IF EXISTS {CHECK}")  # left by a failed attempt
        op.execute(f"ALTER TABLE orders ADD CONSTRAINT {CHECK} CHECK (total_cents IS NOT NULL) NOT VALID")
        with op.get_context().autocommit_block():  # commits the above first
            op.execute(f"ALTER TABLE orders VALIDATE CONSTRAINT {CHECK}")
        op.alter_column("orders", "total_cents", existing_type=sa.BigInteger(), nullable=False)
        op.execute(f"ALTER TABLE orders DROP CONSTRAINT {CHECK}")
    else:
        with op.batch_alter_table("orders") as batch_op:
            batch_op.alter_column("total_cents", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("total_cents", existing_type=sa.BigInteger(), nullable=True)
