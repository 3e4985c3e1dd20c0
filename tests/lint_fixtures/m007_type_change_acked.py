"""M007 acknowledged: widening a varchar, no rewrite on PostgreSQL"""
import sqlalchemy as sa
from alembic import op

revision = "m007_type_change_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        # migration-lint: ack M007 varchar(16) -> varchar(32) only changes the catalog on PostgreSQL
        batch_op.alter_column("status", type_=sa.String(32), existing_type=sa.String(16))  # finding: M007


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("status", type_=sa.String(16), existing_type=sa.String(32))
