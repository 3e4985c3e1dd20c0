"""What is already in the database: the next free ids and the rows new data may reference.

Ids are taken explicitly from max(id) + 1 so that items can point at their order
without a round trip per row; the sequences are moved past them afterwards
(`writer.PostgresCopyWriter.finish`). Rows are read in id order so that a run with
a fixed seed on the same data makes the same choices.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend.datagen.schema import TABLES


@dataclass
class Existing:
    next_ids: dict[str, int]
    user_ids: list[int]
    products: list[tuple[int, int]]  # (id, price_cents)


ORDER_CURRENCY = "EUR"  # orders.currency's server default, which generated orders get


def load_existing(connection: sa.Connection) -> Existing:
    next_ids = {
        table: connection.execute(sa.text(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")).scalar_one()
        for table in TABLES
    }
    user_ids = list(connection.execute(sa.text("SELECT id FROM users ORDER BY id")).scalars())
    # Only products in the currency the generated orders get (the column's server
    # default): the shop refuses an order mixing currencies, so must its test data.
    products = [tuple(row) for row in connection.execute(sa.text(
        "SELECT id, price_cents FROM products WHERE currency = :currency ORDER BY id"), {"currency": ORDER_CURRENCY})]
    return Existing(next_ids, user_ids, products)
