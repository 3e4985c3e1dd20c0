"""The column type changes this template ships (revisions 0010-0012): their copies,
declared once so that the workers know them (backend.backfill.type_change)."""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.type_change import declare_type_change

# Prices in cents: 2**31 cents is 21 million, one line of a big order away.
ORDER_ITEMS_UNIT_PRICE = declare_type_change("order_items", "unit_price_cents", sa.BigInteger())
PRODUCTS_PRICE = declare_type_change("products", "price_cents", sa.BigInteger())
