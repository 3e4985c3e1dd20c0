"""A type change done with backend.migrations.type_change, step 3 of 3 (the old
column's drop is the helper's, and its data a copy): no finding"""
import sqlalchemy as sa

from backend.migrations.type_change import cleanup_type_change, undo_cleanup_type_change

revision = "type_change_cleanup"
down_revision = "type_change_contract"
branch_labels = None
depends_on = None


def upgrade() -> None:
    cleanup_type_change("order_items", "unit_price_cents")


def downgrade() -> None:
    undo_cleanup_type_change("order_items", "unit_price_cents", sa.Integer())
