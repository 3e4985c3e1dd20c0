"""`generate`: one run of the generator, in a single transaction.

Order of work: check the schema, read what exists, then users, products with their
translations, orders with their items, chunk by chunk (written on a background
thread); finally move the id sequences. Large loads on PostgreSQL re-create foreign
keys and plain indexes at the end (`bulk_load`). Nothing is committed unless
everything was written.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from backend.datagen import bulk_load, rows
from backend.datagen.background import BackgroundWriter
from backend.datagen.errors import DatagenError
from backend.datagen.existing import load_existing
from backend.datagen.schema import KNOWN_COLUMNS, TABLES, TargetSchema, inspect_target
from backend.datagen.writer import Writer, writer_for
from backend.db import create_db_engine
from backend.text import SLUG_MAX_LENGTH, slugify

DEFAULT_USERS, DEFAULT_PRODUCTS, DEFAULT_ORDERS = 200, 300, 5_000
DEFAULT_BATCH_SIZE = 20_000
DEFAULT_LOCALES = ("en", "de", "fr", "es", "ja")
# Every seeded user logs in with this password (one hash for all: hashing is slow on purpose).
DEMO_PASSWORD = "password"
# Serialises concurrent runs on PostgreSQL, which would otherwise take the same ids.
ADVISORY_LOCK_KEY = 0x5EED_DA7A


@dataclass(frozen=True)
class Summary:
    users: int
    products: int
    translations: int
    orders: int
    items: int
    seconds: float

    def line(self) -> str:
        return (f"generated {self.users:,} users, {self.products:,} products ({self.translations:,} translations), "
                f"{self.orders:,} orders ({self.items:,} items) in {self.seconds:.2f} s")


def generate(database_url: str, *, users: int = DEFAULT_USERS, products: int = DEFAULT_PRODUCTS,
             orders: int = DEFAULT_ORDERS, seed: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
             locales: Sequence[str] = DEFAULT_LOCALES, default_locale: str | None = None,
             now: float | None = None) -> Summary:
    """Append generated rows to the database at `database_url`.

    `seed` makes the run reproducible on the same starting data (except for the
    password hash, whose salt is random); `now` (epoch seconds) pins the timestamps
    too, for tests comparing two runs.
    """
    _check_options(users=users, products=products, orders=orders, batch_size=batch_size, locales=locales)
    started = time.perf_counter()
    try:
        engine = create_db_engine(database_url)
    except sa.exc.ArgumentError as exc:
        raise DatagenError(f"invalid database URL: {exc}") from None
    try:
        try:
            connection = engine.connect()
        except sa.exc.OperationalError as exc:
            url = make_url(database_url).render_as_string(hide_password=True)
            raise DatagenError(f"cannot connect to {url}: {str(exc.orig).strip().splitlines()[0]}") from None
        with connection, connection.begin():
            counts = _fill(connection, random.Random(seed), users=users, products=products, orders=orders,
                           batch_size=batch_size, locales=tuple(locales),
                           default_locale=default_locale or locales[0], now=time.time() if now is None else now)
    finally:
        engine.dispose()
    return Summary(counts["users"], counts["products"], counts["product_translations"], counts["orders"],
                   counts["order_items"], time.perf_counter() - started)


def _check_options(*, users, products, orders, batch_size, locales) -> None:
    for name, value in (("users", users), ("products", products), ("orders", orders)):
        if value < 0:
            raise DatagenError(f"{name} must be 0 or more, not {value}")
    if batch_size < 1:
        raise DatagenError(f"batch size must be at least 1, not {batch_size}")
    if not locales:
        raise DatagenError("at least one locale is needed")


def _fill(connection: sa.Connection, rng: random.Random, *, users: int, products: int, orders: int,
          batch_size: int, locales: tuple[str, ...], default_locale: str, now: float) -> Counter:
    target = inspect_target(connection)
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    existing = load_existing(connection)
    user_pool = existing.user_ids + list(range(existing.next_ids["users"], existing.next_ids["users"] + users))
    if products and not user_pool:
        raise DatagenError("products need owners but there are no users: pass --users")
    if orders and not (user_pool and (existing.products or products)):
        raise DatagenError("orders need users and products but the database has none: pass --users and --products")

    planned = {"users": users, "products": products, "product_translations": products * len(locales),
               "orders": orders, "order_items": round(orders * rows.MEAN_ITEMS_PER_ORDER)}
    relaxed = bulk_load.tables_worth_it(planned, {table: next_id - 1 for table, next_id in existing.next_ids.items()})
    with bulk_load.constraints_deferred_to_end(connection, relaxed), \
            BackgroundWriter(writer_for(connection)) as writer:
        out = _Output(writer, target)
        clock = rows.Clock(now, writer.stamp)
        if users:
            password_hash = generate_password_hash(DEMO_PASSWORD)
            for chunk in rows.user_chunks(rng, first_id=existing.next_ids["users"], count=users, locales=locales,
                                          default_locale=default_locale, password_hash=password_hash,
                                          clock=clock, batch_size=batch_size):
                out.write("users", chunk)

        product_pool = list(existing.products)
        for chunk in rows.product_chunks(rng, first_id=existing.next_ids["products"],
                                         first_translation_id=existing.next_ids["product_translations"],
                                         count=products, owner_ids=user_pool, locales=locales,
                                         slugify=_slug if target.has("product_translations", "slug") else None,
                                         clock=clock, batch_size=max(1, batch_size // len(locales))):
            out.write("products", chunk.products)
            out.write("product_translations", chunk.translations)
            product_pool.extend(chunk.priced)

        for order_rows, item_rows in rows.order_chunks(rng, first_id=existing.next_ids["orders"],
                                                       first_item_id=existing.next_ids["order_items"], count=orders,
                                                       user_ids=user_pool, products=product_pool, clock=clock,
                                                       batch_size=batch_size):
            out.write("orders", order_rows)
            out.write("order_items", item_rows)

    writer.finish([table for table in TABLES if out.counts[table]])
    return out.counts


def _slug(name: str, locale: str, product_id: int) -> str:
    """Unique per locale because the product id is part of it, after a double hyphen,
    which no slug the app or the backfill picks contains (slugify collapses hyphens;
    their suffixes are `-2`, `-3`...): generating into a live shop never collides."""
    suffix = f"--{product_id}"
    return slugify(name, locale)[: SLUG_MAX_LENGTH - len(suffix)].rstrip("-") + suffix


class _Output:
    """Counts rows and drops the known columns this database does not have."""

    def __init__(self, writer: Writer, target: TargetSchema):
        self._writer, self._target = writer, target
        self._pickers = {table: _picker(KNOWN_COLUMNS[table], target.columns[table]) for table in TABLES}
        self.counts: Counter = Counter()

    def write(self, table: str, chunk: list[tuple]) -> None:
        if not chunk:
            return
        picker = self._pickers[table]
        self._writer.write(table, self._target.columns[table], chunk if picker is None else list(map(picker, chunk)),
                           plain=table in rows.PLAIN_TABLES)
        self.counts[table] += len(chunk)


def _picker(known: tuple[str, ...], present: tuple[str, ...]) -> Callable[[tuple], tuple] | None:
    if present == known:
        return None
    positions = [known.index(column) for column in present]
    if len(positions) == 1:
        return lambda row: (row[positions[0]],)
    return itemgetter(*positions)
