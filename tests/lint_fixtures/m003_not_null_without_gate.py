"""M003: NOT NULL set before (or without) a require_backfill gate"""
import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import require_backfill

revision = "m003_not_null_without_gate"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("orders", "total_cents", existing_type=sa.BigInteger(), nullable=False)  # finding: M003
    op.execute("ALTER TABLE users ALTER COLUMN email_normalized SET NOT NULL")  # finding: M003
    require_backfill("orders_total_cents", revision=revision)
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("total_cents", existing_type=sa.BigInteger(), nullable=False)  # after the gate: fine


def downgrade() -> None:
    op.execute("ALTER TABLE users ALTER COLUMN email_normalized DROP NOT NULL")
    op.alter_column("orders", "total_cents", existing_type=sa.BigInteger(), nullable=True)
