"""M006 acknowledged: a table no deployed code reads"""
from alembic import op

revision = "m006_rename_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M006 only the reporting job reads it, and it is stopped during the deploy
    op.rename_table("report_cache", "report_snapshots")  # finding: M006


def downgrade() -> None:
    op.rename_table("report_snapshots", "report_cache")
