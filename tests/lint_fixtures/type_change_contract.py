"""A type change done with backend.migrations.type_change, step 2 of 3 (its own gate
inside): no finding"""
import sqlalchemy as sa

from backend.migrations import type_change

revision = "type_change_contract"
down_revision = "type_change_expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    type_change.finish_type_change("order_items", "unit_price_cents", old_type=sa.Integer(),
                                   new_type=sa.BigInteger(), revision=revision)


def downgrade() -> None:
    type_change.undo_finish_type_change("order_items", "unit_price_cents", old_type=sa.Integer(),
                                        new_type=sa.BigInteger())
