"""M001: rows of existing tables changed inside upgrade()"""
import sqlalchemy as sa
from alembic import op

revision = "m001_data_change"
down_revision = None
branch_labels = None
depends_on = None

orders = sa.table("orders", sa.column("id", sa.Integer), sa.column("status", sa.String))


def upgrade() -> None:
    op.execute("UPDATE orders SET status = 'paid' WHERE status IS NULL")  # finding: M001
    op.get_bind().execute(sa.text("DELETE FROM order_items WHERE quantity = 0"))  # finding: M001
    op.execute(sa.update(orders).where(orders.c.status == "new").values(status="pending"))  # finding: M001
    op.execute("INSERT INTO order_archive (id) SELECT id FROM orders")  # finding: M001
    # A table this revision creates is nobody else's yet: filling it is fine.
    op.create_table("order_notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))
    op.execute("INSERT INTO order_notes (id, body) SELECT id, '' FROM orders")
    op.execute("UPDATE order_notes SET body = 'none'")


def downgrade() -> None:
    op.drop_table("order_notes")
