"""M008 acknowledged: a revision that only adds a harmless column"""
import sqlalchemy as sa
from alembic import op

revision = "m008_empty_downgrade_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.String(64), nullable=True))


# migration-lint: ack M008 the column is harmless to older code; keeping it keeps its data
def downgrade() -> None:  # finding: M008
    """Nothing: see the acknowledgement."""
