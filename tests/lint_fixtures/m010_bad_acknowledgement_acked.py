"""M010 fixed: the same acknowledgements, each naming a rule and giving a reason"""
from alembic import op

revision = "m010_bad_acknowledgement_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migration-lint: ack M004 orders is empty until the shop opens
    op.create_index("ix_orders_created_at", "orders", ["created_at"])  # finding: M004
    op.drop_column("users", "nickname")  # finding: M005  # migration-lint: ack M005 never shown anywhere
    # migration-lint: ack M005,M006 dropped in favour of profiles.bio, filled by the 2.4 backfill
    op.drop_column("users", "bio")  # finding: M005


def downgrade() -> None:
    op.drop_index("ix_orders_created_at", table_name="orders")
