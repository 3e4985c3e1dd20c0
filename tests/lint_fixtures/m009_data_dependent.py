"""M009: the revision reads data to decide what it does"""
import sqlalchemy as sa
from alembic import op

revision = "m009_data_dependent"
down_revision = None
branch_labels = None
depends_on = None

orders = sa.table("orders", sa.column("id", sa.Integer), sa.column("currency", sa.String))


def _has_foreign_currencies() -> bool:
    bind = op.get_bind()
    return bool(bind.execute(sa.select(sa.func.count()).select_from(orders).where(orders.c.currency != "EUR")).scalar())  # finding: M009


def upgrade() -> None:
    if _has_foreign_currencies():
        op.add_column("orders", sa.Column("exchange_rate", sa.Numeric(12, 6), nullable=True))
    if op.get_bind().execute(sa.text("SELECT 1 FROM users WHERE preferred_locale = 'ja' LIMIT 1")).first():  # finding: M009
        op.add_column("users", sa.Column("furigana", sa.String(320), nullable=True))


def downgrade() -> None:
    connection = op.get_bind()
    if connection.exec_driver_sql("SELECT count(*) FROM orders").scalar():  # finding: M009
        op.drop_column("orders", "exchange_rate")
    op.drop_column("users", "furigana")
