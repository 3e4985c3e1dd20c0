"""M004 acknowledged: a small table, indexed in the revision's transaction"""
from alembic import op

revision = "m004_index_without_concurrently_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M004 currencies has a few dozen rows
    op.create_index("ix_currencies_code", "currencies", ["code"])  # finding: M004


def downgrade() -> None:
    op.drop_index("ix_currencies_code", table_name="currencies")
