"""M001 acknowledged: small lookup tables, changed in the revision on purpose"""
import sqlalchemy as sa
from alembic import op

revision = "m001_data_change_acked"
down_revision = None
branch_labels = None
depends_on = None

orders = sa.table("orders", sa.column("id", sa.Integer), sa.column("status", sa.String))


def upgrade() -> None:
    op.execute("UPDATE orders SET status = 'paid' WHERE status IS NULL")  # finding: M001  # migration-lint: ack M001 only rows of a status nobody writes any more
    # migration-lint: ack M001 order_items with quantity 0 were never possible; a handful of test rows
    op.get_bind().execute(sa.text("DELETE FROM order_items WHERE quantity = 0"))  # finding: M001
    # The comment block above a statement may hold the acknowledgement anywhere:
    # migration-lint: ack M001 - a few hundred rows, measured with --rehearse
    # (this line explains more)
    op.execute(sa.update(orders).where(orders.c.status == "new").values(status="pending"))  # finding: M001
    op.execute(  # finding: M001
        "INSERT INTO order_archive (id) SELECT id FROM orders"  # migration-lint: ack M001: append-only, read by nobody yet
    )


# migration-lint: ack M008 the data changes are not reversed
def downgrade() -> None:  # finding: M008
    pass
