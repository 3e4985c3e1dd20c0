"""Cleanup: prices to bigint, step 3 of 3: the integer columns and their triggers dropped

Normally a release after 0011, once nobody will downgrade to before it. Its
downgrade adds the integer columns back, kept in sync by the reverse triggers, and
fills them in batches of short transactions, so that 0011's downgrade can swap back.

Revision ID: 0012_prices_bigint_cleanup
Revises: 0011_prices_bigint_contract
Create Date: 2026-12-01 00:00:12

"""
from typing import Sequence, Union

import sqlalchemy as sa

from backend.migrations.type_change import cleanup_type_change, undo_cleanup_type_change

revision: str = "0012_prices_bigint_cleanup"
down_revision: Union[str, Sequence[str], None] = "0011_prices_bigint_contract"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = (("order_items", "unit_price_cents"), ("products", "price_cents"))


def upgrade() -> None:
    for table, column in COLUMNS:
        cleanup_type_change(table, column)


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        undo_cleanup_type_change(table, column, sa.Integer())
