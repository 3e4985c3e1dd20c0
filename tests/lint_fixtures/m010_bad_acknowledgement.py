"""M010: acknowledgements that acknowledge nothing"""
from alembic import op

revision = "m010_bad_acknowledgement"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M004
    op.create_index("ix_orders_created_at", "orders", ["created_at"])  # finding: M004
    op.drop_column("users", "nickname")  # finding: M005  # migration-lint: ack M050 typo in the rule id
    # migration-lint: acknowledged M005 wrong verb
    op.drop_column("users", "bio")  # finding: M005
    # migration-lint: ack M010 an M010 cannot be acknowledged
    op.drop_column("users", "avatar")  # finding: M005


def downgrade() -> None:
    op.drop_index("ix_orders_created_at", table_name="orders")
