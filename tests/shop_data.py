"""A small shop on the foundation schema (revision 0002), written with plain SQL
so that the migration tests do not depend on the generator or the models."""
from __future__ import annotations

import sqlalchemy as sa

NAMES = {
    "en": "Green Tea", "de": "Grüner Tee Größe", "fr": "Thé vert crème", "es": "Té verde niño", "ja": "緑茶 ティー",
}


def seed_shop(engine: sa.Engine, *, users: int = 6, products: int = 5, orders: int = 40) -> dict[int, int]:
    """Returns {order_id: expected total in cents}."""
    expected: dict[int, int] = {}
    with engine.begin() as connection:
        for u in range(1, users + 1):
            connection.execute(
                sa.text("INSERT INTO users (id, email, preferred_locale, password_hash) VALUES (:id, :e, 'en', 'x')"),
                {"id": u, "e": f"User{u}@Bücher.Example" if u % 2 else f"user{u}@example.com"},
            )
        for p in range(1, products + 1):
            connection.execute(
                sa.text("INSERT INTO products (id, owner_id, sku, price_cents, currency, stock) "
                        "VALUES (:id, 1, :sku, :price, 'EUR', 100)"),
                {"id": p, "sku": f"SKU-{p}", "price": 100 * p + 99},
            )
            for locale, name in NAMES.items():
                # Every product has the same names: slugs must get suffixes.
                connection.execute(
                    sa.text("INSERT INTO product_translations (product_id, locale, name, description) "
                            "VALUES (:p, :l, :n, '')"),
                    {"p": p, "l": locale, "n": name},
                )
        for o in range(1, orders + 1):
            connection.execute(
                sa.text("INSERT INTO orders (id, user_id, status, currency) VALUES (:id, :u, 'paid', 'EUR')"),
                {"id": o, "u": (o % users) + 1},
            )
            total = 0
            for i in range(o % 4):  # some orders have no items: total 0
                product = (o + i) % products + 1
                quantity = i + 1
                connection.execute(
                    sa.text("INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
                            "VALUES (:o, :p, :q, :price)"),
                    {"o": o, "p": product, "q": quantity, "price": 100 * product + 99},
                )
                total += quantity * (100 * product + 99)
            expected[o] = total
    return expected
