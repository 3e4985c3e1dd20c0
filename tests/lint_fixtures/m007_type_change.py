"""M007: column types changed"""
import sqlalchemy as sa
from alembic import op

revision = "m007_type_change"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("products", "price_cents", type_=sa.BigInteger(), existing_type=sa.Integer())  # finding: M007
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("status", type_=sa.String(32), existing_type=sa.String(16))  # finding: M007
    op.execute("ALTER TABLE users ALTER COLUMN preferred_locale TYPE varchar(35)")  # finding: M007
    op.execute(sa.DDL("ALTER TABLE orders ALTER COLUMN currency TYPE varchar(8)"))  # finding: M007
    op.execute("ALTER TABLE {} ALTER COLUMN sku TYPE text".format("products"))  # finding: M007


def downgrade() -> None:
    op.execute("ALTER TABLE products ALTER COLUMN sku TYPE varchar(64)")
    op.execute("ALTER TABLE orders ALTER COLUMN currency TYPE varchar(3)")
    op.execute("ALTER TABLE users ALTER COLUMN preferred_locale TYPE varchar(16)")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("status", type_=sa.String(16), existing_type=sa.String(32))
    op.alter_column("products", "price_cents", type_=sa.Integer(), existing_type=sa.BigInteger())
