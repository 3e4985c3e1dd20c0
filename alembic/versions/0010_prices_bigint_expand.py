"""Expand: prices to bigint, step 1 of 3: shadow columns kept in sync, their copies scheduled

order_items.unit_price_cents and products.price_cents are integer: 2**31 cents is
21 million, one line of a big order away from an overflow. The app keeps reading
and writing the integer columns; a trigger fills `<column>_new` (bigint) for every
row it writes, and the type_change backfills copy the rows written before. See
docs/type-changes.md.

Revision ID: 0010_prices_bigint_expand
Revises: 0009_users_email_unique
Create Date: 2026-12-01 00:00:10

"""
from typing import Sequence, Union

import sqlalchemy as sa

from backend.migrations.type_change import start_type_change, undo_start_type_change

revision: str = "0010_prices_bigint_expand"
down_revision: Union[str, Sequence[str], None] = "0009_users_email_unique"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    start_type_change("order_items", "unit_price_cents", sa.BigInteger(), revision=revision)
    start_type_change("products", "price_cents", sa.BigInteger(), revision=revision)


def downgrade() -> None:
    undo_start_type_change("products", "price_cents", revision=revision)
    undo_start_type_change("order_items", "unit_price_cents", revision=revision)
