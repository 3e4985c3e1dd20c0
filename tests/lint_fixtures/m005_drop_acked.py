"""M005 acknowledged: a column unused since the previous release"""
import sqlalchemy as sa
from alembic import op

revision = "m005_drop_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M005 unused since release 2.3, backed up by the deploy (--backup)
    op.drop_column("users", "password_hash")  # finding: M005
    op.drop_table("legacy_carts")  # finding: M005  # migration-lint: ack M005 emptied by hand in 2.1


def downgrade() -> None:
    op.create_table("legacy_carts", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("users", sa.Column("password_hash", sa.String(255), server_default="", nullable=False))
