"""Contract: prices to bigint, step 2 of 3: the bigint columns take the names, once copied

Behind the gates of the type_change backfills: for each column, the CHECK and NOT
NULL are rebuilt on the bigint column while the shop writes, then one short
transaction swaps the columns by renames (under the lock timeout and its retries).
The integer columns stay, as `<column>_old`, kept in sync by a reverse trigger,
until 0012: this revision can be downgraded without losing a write.

Revision ID: 0011_prices_bigint_contract
Revises: 0010_prices_bigint_expand
Create Date: 2026-12-01 00:00:11

"""
from typing import Sequence, Union

import sqlalchemy as sa

from backend.migrations.type_change import finish_type_change, undo_finish_type_change

revision: str = "0011_prices_bigint_contract"
down_revision: Union[str, Sequence[str], None] = "0010_prices_bigint_expand"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = (("order_items", "unit_price_cents"), ("products", "price_cents"))


def upgrade() -> None:
    for table, column in COLUMNS:
        finish_type_change(table, column, old_type=sa.Integer(), new_type=sa.BigInteger(), revision=revision)


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        undo_finish_type_change(table, column, old_type=sa.Integer(), new_type=sa.BigInteger())
