"""Two transactions choosing a slug in one locale take turns (PostgreSQL advisory
lock per locale), so they never pick the same free slug, even before revision 0007
makes (locale, slug) unique."""
from __future__ import annotations

import threading

import sqlalchemy as sa

from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from backend.slugs import free_slug, lock_locales
from tests.shop_data import seed_shop

EXPAND = "0004_translation_slugs"  # slug column, plain index: nothing but the lock keeps slugs apart


def insert_translation(connection, product_id: int, locale: str, name: str, slug: str) -> None:
    connection.execute(sa.text(
        "INSERT INTO product_translations (product_id, locale, name, description, slug) "
        "VALUES (:product, :locale, :name, '', :slug)"),
        {"product": product_id, "locale": locale, "name": name, "slug": slug})


def test_a_second_chooser_in_the_same_locale_waits_and_picks_the_next_slug(pg_url):
    upgrade(pg_url, EXPAND)
    engine = create_db_engine(pg_url)
    seed_shop(engine, products=1, orders=0)
    with engine.begin() as connection:  # two products with no translation yet
        connection.execute(sa.text("INSERT INTO products (id, owner_id, sku, price_cents, currency, stock) "
                                   "VALUES (10, 1, 'T-10', 100, 'EUR', 1), (11, 1, 'T-11', 100, 'EUR', 1)"))
    picked: dict[str, str] = {}

    def second_chooser():
        with engine.begin() as connection:
            picked["second"] = free_slug(connection, "de", "Neuer Tisch")
            insert_translation(connection, 11, "de", "Neuer Tisch", picked["second"])

    with engine.begin() as connection:
        picked["first"] = free_slug(connection, "de", "Neuer Tisch")
        thread = threading.Thread(target=second_chooser)
        thread.start()
        thread.join(0.5)
        assert "second" not in picked  # it waits for our commit
        insert_translation(connection, 10, "de", "Neuer Tisch", picked["first"])
    thread.join(10)
    assert picked == {"first": "neuer-tisch", "second": "neuer-tisch-2"}
    engine.dispose()


def test_other_locales_do_not_wait(pg_url):
    upgrade(pg_url, EXPAND)
    engine = create_db_engine(pg_url)
    with engine.begin() as connection:
        lock_locales(connection, ["de", "en"])
        other = threading.Thread(target=lambda: _choose(engine, "fr"))
        other.start()
        other.join(5)
        assert not other.is_alive()  # fr is not locked by us
    engine.dispose()


def _choose(engine, locale: str) -> str:
    with engine.begin() as connection:
        return free_slug(connection, locale, "Table")
