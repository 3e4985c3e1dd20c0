"""M006: tables and columns renamed"""
from alembic import op

revision = "m006_rename"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("orders", "purchases")  # finding: M006
    op.alter_column("users", "email", new_column_name="email_address")  # finding: M006
    op.execute("ALTER TABLE products RENAME COLUMN sku TO article_number")  # finding: M006


def downgrade() -> None:
    op.execute("ALTER TABLE products RENAME COLUMN article_number TO sku")
    op.alter_column("users", "email_address", new_column_name="email")
    op.rename_table("purchases", "orders")
