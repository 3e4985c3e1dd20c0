"""M002: NOT NULL columns without a server default added to existing tables"""
import sqlalchemy as sa
from alembic import op

revision = "m002_not_null_column"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.String(64), nullable=False))  # finding: M002
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=False))  # finding: M002
        batch_op.add_column(sa.Column("channel", sa.String(16), server_default="web", nullable=False))
        batch_op.add_column(sa.Column("coupon", sa.String(32), nullable=True))
    op.execute("ALTER TABLE products ADD COLUMN weight_grams integer NOT NULL")  # finding: M002
    op.execute("ALTER TABLE products ADD COLUMN origin varchar(2) NOT NULL DEFAULT 'EU'")
    flag = sa.Column("flagged", sa.Boolean(), nullable=False)
    op.add_column("users", flag)  # finding: M002


def downgrade() -> None:
    op.drop_column("users", "flagged")
    op.drop_column("products", "origin")
    op.drop_column("products", "weight_grams")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("coupon")
        batch_op.drop_column("channel")
        batch_op.drop_column("note")
    op.drop_column("users", "nickname")
