"""M004: indexes built on existing tables under a lock"""
import sqlalchemy as sa
from alembic import op

revision = "m004_index_without_concurrently"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_created_at", "orders", ["created_at"])  # finding: M004
    op.create_index("ix_orders_currency", "orders", ["currency"], postgresql_concurrently=True)  # finding: M004
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_unique_constraint("uq_users_email_normalized", ["email_normalized"])  # finding: M004
    op.execute("CREATE INDEX ix_products_currency ON products (currency)")  # finding: M004
    op.execute("ALTER TABLE products ADD CONSTRAINT uq_products_sku_currency UNIQUE (sku, currency)")  # finding: M004
    op.execute("ALTER TABLE order_notes ADD PRIMARY KEY (id)")  # finding: M004
    op.execute("ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE USING INDEX ix_users_email")  # built before
    with op.get_context().autocommit_block():
        op.create_index("ix_orders_updated_at", "orders", ["updated_at"], postgresql_concurrently=True)
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_created_at ON users (created_at)")
    op.create_table("coupons", sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(32)))
    op.create_index("ix_coupons_code", "coupons", ["code"], unique=True)


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP CONSTRAINT uq_users_email")
    op.execute("ALTER TABLE order_notes DROP CONSTRAINT order_notes_pkey")
    op.execute("ALTER TABLE products DROP CONSTRAINT uq_products_sku_currency")
    op.drop_index("ix_coupons_code", table_name="coupons")
    op.drop_table("coupons")
    op.drop_index("ix_users_created_at", table_name="users")
    op.drop_index("ix_orders_updated_at", table_name="orders")
    op.drop_index("ix_products_currency", table_name="products")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_email_normalized", type_="unique")
    op.drop_index("ix_orders_currency", table_name="orders")
    op.drop_index("ix_orders_created_at", table_name="orders")
