"""M003 acknowledged: a column the application has always filled"""
import sqlalchemy as sa
from alembic import op

revision = "m003_not_null_without_gate_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M003 written by every code path since it was added; checked with --rehearse
    op.alter_column("orders", "total_cents", existing_type=sa.BigInteger(), nullable=False)  # finding: M003


def downgrade() -> None:
    op.alter_column("orders", "total_cents", existing_type=sa.BigInteger(), nullable=True)
