"""M008: a downgrade that does nothing"""
import sqlalchemy as sa
from alembic import op

revision = "m008_empty_downgrade"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.String(64), nullable=True))


def downgrade() -> None:  # finding: M008
    pass
