"""Stored order totals, for fast order listings (expand: 0003, contract: 0006).

Set-based: one UPDATE per key range computes each order's total from its items.
The app writes `total_cents` for every order it creates from revision 0003 on, so
orders created after the run started (above its key bounds) never need it.

The batch size adapts to aim each batch at 100 ms (from 2,000 rows): large enough
that the per-batch bookkeeping is a few percent of the work, short enough that a
shop write waiting for one of its rows waits at most that long.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.registry import register
from backend.backfill.definition import SqlBackfill

orders = sa.table("orders", sa.column("id", sa.BigInteger), sa.column("total_cents", sa.BigInteger))
order_items = sa.table(
    "order_items",
    sa.column("order_id", sa.BigInteger),
    sa.column("quantity", sa.Integer),
    sa.column("unit_price_cents", sa.Integer),
)


@register
class OrdersTotalCents(SqlBackfill):
    name = "orders_total_cents"
    description = "orders.total_cents = sum of quantity x unit price of the order's items"
    table = orders
    batch_size = 2000
    target_batch_seconds = 0.1

    def pending_filter(self):
        return orders.c.total_cents.is_(None)

    def statement(self, where):
        total = (
            # In bigint before multiplying: two integer columns would overflow PostgreSQL's
            # int4 beyond 2**31 cents for one line.
            sa.select(sa.func.coalesce(sa.func.sum(
                sa.cast(order_items.c.quantity, sa.BigInteger) * order_items.c.unit_price_cents), 0))
            .where(order_items.c.order_id == orders.c.id)
            .scalar_subquery()
        )
        return sa.update(orders).where(where).values(total_cents=total)
