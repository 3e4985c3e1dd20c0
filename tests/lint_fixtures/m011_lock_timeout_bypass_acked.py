"""M011 acknowledged: a table only a nightly job writes, which may be waited for"""
import sqlalchemy as sa
from alembic import op

from backend.migrations import online

revision = "m011_lock_timeout_bypass_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    with online.lock_timeout(None):
        # migration-lint: ack M011 report_rows is written by the nightly export only, never by the shop
        op.add_column("report_rows", sa.Column("source", sa.String(32), nullable=True))  # finding: M011
    op.execute("SET LOCAL lock_timeout = '5s'")  # finding: M011  # migration-lint: ack M011 shorter, this transaction only


def downgrade() -> None:
    op.drop_column("report_rows", "source")
