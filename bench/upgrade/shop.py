"""The scratch shop: the foundation schema (0002_backfill_state), generated data at a
given size, vacuumed and analyzed as a live shop's tables would be (so that
autovacuum does not start in the middle of the upgrade and the shop's statements
use their indexes from the first one), then checkpointed.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend.backfill.state import backfill_runs
from backend.datagen import generate
from backend.datagen.generator import DEFAULT_LOCALES
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from bench.upgrade.attribution import TABLES
from bench.upgrade.timeline import BackfillRun

FOUNDATION = "0002_backfill_state"
USERS_PER_ORDER = 1 / 3
PRODUCTS_PER_ORDER = 1 / 10


@dataclass(frozen=True)
class Shop:
    orders: int
    items: int
    users: int
    products: int
    translations: int
    generate_s: float
    ids: dict[str, tuple[int, int]]  # table -> (min id, max id)


def shape(orders: int) -> dict[str, int]:
    """Users and products in proportion to the orders (one of each at least)."""
    return {"users": max(int(orders * USERS_PER_ORDER), 1), "products": max(int(orders * PRODUCTS_PER_ORDER), 1)}


def build(url: str, orders: int, seed: int) -> Shop:
    upgrade(url, FOUNDATION)
    summary = generate(url, orders=orders, seed=seed, locales=DEFAULT_LOCALES, **shape(orders))
    engine = create_db_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE users, products, product_translations, orders, order_items"))
            try:  # the load's dirty pages written now, not by a checkpoint during the upgrade
                connection.execute(sa.text("CHECKPOINT"))
            except sa.exc.DBAPIError:
                pass  # needs superuser (or pg_checkpoint)
            ids = {table: tuple(connection.execute(sa.text(f"SELECT min(id), max(id) FROM {table}")).one())
                   for table in TABLES}
    finally:
        engine.dispose()
    return Shop(summary.orders, summary.items, summary.users, summary.products, summary.translations,
                summary.seconds, ids)


def backfill_runs_of(url: str) -> list[BackfillRun]:
    """The engine's record of each run: when it started and finished (the child's clock)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(
                backfill_runs.c.id, backfill_runs.c.name, backfill_runs.c.status, backfill_runs.c.started_at,
                backfill_runs.c.finished_at, backfill_runs.c.rows_done).order_by(backfill_runs.c.id)).all()
    finally:
        engine.dispose()
    return [BackfillRun(row.name, row.id, row.status, row.started_at and row.started_at.timestamp(),
                        row.finished_at and row.finished_at.timestamp(), int(row.rows_done or 0)) for row in rows]
