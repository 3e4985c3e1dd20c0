"""M011: DDL outside the migration's lock_timeout and its retries"""
import sqlalchemy as sa
from alembic import op

from backend.migrations.online import create_index, lock_timeout

revision = "m011_lock_timeout_bypass"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = 0")  # finding: M011
    op.execute("SET LOCAL lock_timeout TO '10min'")  # finding: M011
    op.get_bind().exec_driver_sql("RESET lock_timeout")  # finding: M011
    op.execute("SET statement_timeout = 0")  # lock_timeout still bounds every lock wait
    with lock_timeout(None):
        op.alter_column("orders", "currency", existing_type=sa.String(3), server_default="EUR")  # finding: M011
        op.execute("ALTER TABLE orders ADD CONSTRAINT ck_total CHECK (total_cents >= 0) NOT VALID")  # finding: M011
        add_gift_column()
        with lock_timeout(5):
            op.add_column("orders", sa.Column("coupon", sa.String(32), nullable=True))  # a bounded wait: fine
        op.execute("ALTER TABLE orders VALIDATE CONSTRAINT ck_total")  # its lock queues no shop statement
        create_index("ix_orders_currency", "orders", ["currency"])  # CONCURRENTLY: nor does this one
        op.create_table("coupons", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column("coupons", sa.Column("code", sa.String(32), nullable=True))  # a new table: nobody waits
    with op.get_context().autocommit_block(), lock_timeout(None):
        op.create_index("ix_orders_status", "orders", ["status"], postgresql_concurrently=True)
    with lock_timeout(30):
        op.alter_column("users", "email", existing_type=sa.String(320), server_default="")  # the explicit opt-in
    engine = op.get_bind().engine
    with engine.connect() as connection:  # finding: M011
        connection.execute(sa.text("ALTER TABLE users ADD COLUMN nickname varchar(64)"))
    with sa.create_engine("postgresql://localhost/shop").begin() as connection:  # finding: M011
        connection.execute(sa.text("ALTER TABLE users ADD COLUMN bio text"))
    op.get_bind().engine.raw_connection().cursor().execute("ALTER TABLE users ADD COLUMN tz text")  # finding: M011


def add_gift_column() -> None:
    op.add_column("orders", sa.Column("gift", sa.Boolean(), nullable=True))  # finding: M011


def downgrade() -> None:
    op.execute("SET lock_timeout = '1min'")  # finding: M011
    op.drop_column("users", "tz")
    op.drop_column("users", "bio")
    op.drop_column("users", "nickname")
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_table("coupons")
    op.drop_index("ix_orders_currency", table_name="orders")
    op.drop_column("orders", "coupon")
    op.drop_column("orders", "gift")
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_total")
