"""A type change done with backend.migrations.type_change, step 1 of 3: no finding"""
import sqlalchemy as sa

from backend.migrations.type_change import start_type_change, undo_start_type_change

revision = "type_change_expand"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    start_type_change("order_items", "unit_price_cents", sa.BigInteger(), revision=revision)


def downgrade() -> None:
    undo_start_type_change("order_items", "unit_price_cents")
