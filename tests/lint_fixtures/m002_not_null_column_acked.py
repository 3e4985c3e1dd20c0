"""M002 acknowledged: the table is empty in every deployment"""
import sqlalchemy as sa
from alembic import op

revision = "m002_not_null_column_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M002 users is always empty when this runs (created by the previous revision)
    op.add_column("users", sa.Column("nickname", sa.String(64), nullable=False))  # finding: M002
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=False))  # finding: M002  # migration-lint: ack M002 orders is empty too


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("note")
    op.drop_column("users", "nickname")
