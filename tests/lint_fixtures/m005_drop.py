"""M005: tables and columns dropped"""
import sqlalchemy as sa
from alembic import op

revision = "m005_drop"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("legacy_carts")  # finding: M005
    op.drop_column("users", "password_hash")  # finding: M005
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("currency")  # finding: M005
    op.execute("ALTER TABLE products DROP COLUMN stock")  # finding: M005
    op.execute("ALTER TABLE products DROP CONSTRAINT ck_products_price_not_negative")  # a constraint: fine
    op.drop_table("coupons")  # finding: M005
    op.create_table("coupons", sa.Column("id", sa.Integer, primary_key=True))  # created again: new from here
    op.create_index("ix_coupons_id", "coupons", ["id"])  # on the new, empty table: fine


def downgrade() -> None:
    op.add_column("products", sa.Column("stock", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("currency", sa.String(3), server_default="EUR", nullable=False))
    op.add_column("users", sa.Column("password_hash", sa.String(255), server_default="", nullable=False))
    op.create_table("legacy_carts", sa.Column("id", sa.Integer, primary_key=True))
