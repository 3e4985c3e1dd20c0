"""ON DELETE CASCADE on SQLite and PostgreSQL: plain SQL deletes and ORM deletes.

Seed (explicit ids, plain SQL):
  users 1 (seller) and 2 (buyer)
  products 10 (user 1, translations 100 en / 101 de) and 11 (user 2, translation 110 en)
  orders 20 (user 2: items 200 -> product 10, 201 -> product 11)
         21 (user 1: item 210 -> product 11)
"""
from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from backend.db import create_db_engine
from backend.models import Order, Product, User

SEED = [
    "INSERT INTO users (id, email, email_normalized, password_hash) VALUES "
    "(1, 'seller@example.com', 'seller@example.com', 'x'), (2, 'buyer@example.com', 'buyer@example.com', 'x')",
    "INSERT INTO products (id, owner_id, sku, price_cents) VALUES (10, 1, 'TEA', 450), (11, 2, 'CUP', 1200)",
    "INSERT INTO product_translations (id, product_id, locale, name, slug) VALUES "
    "(100, 10, 'en', 'Tea', 'tea'), (101, 10, 'de', 'Tee', 'tee'), (110, 11, 'en', 'Cup', 'cup')",
    "INSERT INTO orders (id, user_id, total_cents) VALUES (20, 2, 1650), (21, 1, 1200)",
    "INSERT INTO order_items (id, order_id, product_id, quantity, unit_price_cents) VALUES "
    "(200, 20, 10, 1, 450), (201, 20, 11, 1, 1200), (210, 21, 11, 1, 1200)",
]
TABLES = ("users", "products", "product_translations", "orders", "order_items")


@pytest.fixture
def engine(migrated_db_url):
    engine = create_db_engine(migrated_db_url)
    with engine.begin() as connection:
        for statement in SEED:
            connection.exec_driver_sql(statement)
    yield engine
    engine.dispose()


def remaining(engine) -> dict[str, set[int]]:
    with engine.connect() as connection:
        return {table: set(connection.exec_driver_sql(f"SELECT id FROM {table}").scalars()) for table in TABLES}


def delete(engine, sql: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(sql)


def test_seed_is_complete(engine):
    assert remaining(engine) == {
        "users": {1, 2}, "products": {10, 11}, "product_translations": {100, 101, 110},
        "orders": {20, 21}, "order_items": {200, 201, 210},
    }


# What deleting each row must leave, whichever way it is deleted.
AFTER_USER_1 = {
    "users": {2},
    "products": {11},  # product 10 was user 1's...
    "product_translations": {110},  # ...with its translations
    "orders": {20},  # order 21 was user 1's
    "order_items": {201},  # 200 named product 10, 210 belonged to order 21
}
AFTER_ORDER_20 = {
    "users": {1, 2}, "products": {10, 11}, "product_translations": {100, 101, 110},
    "orders": {21}, "order_items": {210},
}
AFTER_PRODUCT_10 = {
    "users": {1, 2}, "products": {11}, "product_translations": {110},
    "orders": {20, 21},  # orders stay, only the product's lines go
    "order_items": {201, 210},
}


def test_sql_delete_of_a_user_removes_their_products_and_orders(engine):
    delete(engine, "DELETE FROM users WHERE id = 1")

    assert remaining(engine) == AFTER_USER_1


def test_sql_delete_of_an_order_removes_its_items(engine):
    delete(engine, "DELETE FROM orders WHERE id = 20")

    assert remaining(engine) == AFTER_ORDER_20


def test_sql_delete_of_a_product_removes_its_items_and_translations(engine):
    delete(engine, "DELETE FROM products WHERE id = 10")

    assert remaining(engine) == AFTER_PRODUCT_10


@pytest.mark.parametrize("load_children", [False, True], ids=["children-unloaded", "children-loaded"])
def test_orm_delete_of_a_user_removes_children(engine, load_children):
    """Unloaded children are left to the database (passive_deletes); loaded ones the
    ORM deletes itself. Either way the result is the same and nothing fails."""
    with Session(engine) as session:
        user = session.get(User, 1)
        if load_children:
            assert [p.id for p in user.products] == [10] and [o.id for o in user.orders] == [21]
            assert len(user.products[0].translations) == 2
        session.delete(user)
        session.commit()

    assert remaining(engine) == AFTER_USER_1


def test_orm_delete_of_an_order_removes_its_items(engine):
    with Session(engine) as session:
        session.delete(session.get(Order, 20))
        session.commit()

    assert remaining(engine) == AFTER_ORDER_20


def test_orm_delete_of_a_product_removes_its_items_and_translations(engine):
    with Session(engine) as session:
        session.delete(session.get(Product, 10))
        session.commit()

    assert remaining(engine) == AFTER_PRODUCT_10


def test_sqlite_connections_enforce_foreign_keys(sqlite_url):
    """Without this pragma SQLite would ignore every cascade above, silently."""
    engine = create_db_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
