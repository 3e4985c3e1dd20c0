"""The per-row suite's scratch database (`python -m bench --per-row`): the
translation_slugs backfill on product translations, built, reset and checked the way
bench.database does it for orders.

The slug backfill runs on its own data, not on the orders dataset: that one has at
most 2,000 products (10,000 translations), far from the 500k-1M rows the issue asks
about. Here `--rows` counts translations: rows / 5 products in the generator's five
locales, with a small shop beside them (orders for the concurrent load to write).

Built like a real upgrade: revision 0002, generated data, then 0003 and 0004 (the
nullable slug, its (locale, slug) index, the scheduled run). Each translation's base
slug (backend.text.slugify of its name) is computed once, in Python, into
bench_expected_slugs. The check then holds for any order the rows were processed in:
no slug left NULL, no (locale, slug) twice, and each slug is its row's base or the
base with a numeric suffix of 2 or more (backend.text.with_suffix).
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass

import sqlalchemy as sa

from backend.backfill.registry import load_catalog
from backend.datagen import generate
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from backend.text import SLUG_MAX_LENGTH, slugify
from bench import idslugs
from bench.database import FOUNDATION, Dataset, expanded_shop, reset_scratch

BACKFILL = "translation_slugs"
EXPAND = "0004_translation_slugs"
LOCALES = 5  # the generator's default locales


def default_batch_size() -> int:
    return load_catalog().get(BACKFILL).batch_size


def dataset_shape(translations: int) -> dict[str, int]:
    """Products for `translations` rows; a shop small beside them, big enough for the load."""
    products = max(translations // LOCALES, 10)
    return {"products": products, "users": min(max(products // 100, 100), 2_000),
            "orders": min(max(products // 10, 1_000), 20_000)}


@dataclass
class RowDataset(Dataset):
    """bench.database's Dataset whose rows are the product translations (its orders
    only feed the load)."""
    translations: int

    @property
    def rows(self) -> int:
        return self.translations


def prepare(url: str, translations: int, seed: int) -> RowDataset:
    started = time.perf_counter()
    upgrade(url, FOUNDATION)
    summary = generate(url, seed=seed, **dataset_shape(translations))
    upgrade(url, EXPAND)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE bench_expected_slugs (id bigint PRIMARY KEY, base text NOT NULL)"))
            rows = connection.execute(sa.text("SELECT id, locale, name FROM product_translations")).all()
            buffer = io.StringIO("".join(f"{id_}\t{_copy_text(slugify(name, locale))}\n" for id_, locale, name in rows))
            cursor = connection.connection.driver_connection.cursor()
            cursor.copy_expert("COPY bench_expected_slugs (id, base) FROM STDIN", buffer)
            base_max = expanded_shop(connection, BACKFILL, EXPAND)
    finally:
        engine.dispose()
    return RowDataset(url=url, translations=summary.translations, orders=summary.orders, items=summary.items,
                      base_max_order_id=base_max, generate_s=summary.seconds,
                      prepare_s=time.perf_counter() - started)


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


# Methods that run another backfill of the same rows (bench.idslugs: the N-lane figure).
BACKFILL_OF_METHOD = {"rowidslugs1": idslugs.BACKFILL, "rowidslugs2": idslugs.BACKFILL}


def backfill_of(method: str | None) -> str:
    """The backfill `method` runs (its pending run is created by `reset`)."""
    backfill = BACKFILL_OF_METHOD.get(method, BACKFILL)
    if backfill == idslugs.BACKFILL:
        idslugs.register()
    return backfill


def reset(dataset: RowDataset, batch_size: int, *, checkpoint: bool = True, method: str | None = None) -> int:
    """Slugs back to NULL, the load's orders gone, one pending run of the backfill
    `method` runs; repacked, checkpointed."""
    return reset_scratch(dataset.url, dataset.base_max_order_id, backfill=backfill_of(method), revision=EXPAND,
                         batch_size=batch_size,
                         clear_sql="UPDATE product_translations SET slug = NULL WHERE slug IS NOT NULL",
                         repack=("product_translations", "orders"),
                         analyze=("product_translations", "orders", "order_items"), checkpoint=checkpoint)


# A slug is right for its row when it is the base, or the base cut to leave room for a
# suffix "-n" (n >= 2) with that suffix, as backend.text.with_suffix builds it.
VERIFY_SQL = f"""
SELECT count(*),
       count(*) FILTER (WHERE t.slug IS NULL),
       count(*) FILTER (WHERE t.slug IS NOT NULL AND t.slug <> e.base AND NOT (
           substring(t.slug FROM '-([0-9]+)$') IS NOT NULL
           AND substring(t.slug FROM '-([0-9]+)$')::numeric >= 2
           AND rtrim(left(e.base, {SLUG_MAX_LENGTH} - length(substring(t.slug FROM '-[0-9]+$'))), '-')
               || substring(t.slug FROM '-[0-9]+$') = t.slug))
FROM product_translations t JOIN bench_expected_slugs e ON e.id = t.id
"""
DUPLICATES_SQL = """
SELECT COALESCE(sum(n - 1), 0) FROM (
    SELECT count(*) AS n FROM product_translations WHERE slug IS NOT NULL GROUP BY locale, slug HAVING count(*) > 1
) d
"""


def verify(dataset: RowDataset, method: str | None = None) -> dict:
    """translation_slugs' check (order-independent, see VERIFY_SQL), or the id-suffixed
    slugs' exact one for the methods that run that backfill."""
    check = idslugs.VERIFY_SQL if backfill_of(method) == idslugs.BACKFILL else VERIFY_SQL
    engine = create_db_engine(dataset.url)
    try:
        with engine.connect() as connection:
            checked, still_null, wrong = connection.execute(sa.text(check)).one()
            duplicates = connection.execute(sa.text(DUPLICATES_SQL)).scalar_one()
            total = connection.execute(sa.text("SELECT count(*) FROM product_translations")).scalar_one()
    finally:
        engine.dispose()
    correct = checked == dataset.translations == total and still_null == 0 and wrong == 0 and duplicates == 0
    return {"correct": bool(correct), "checked": int(checked), "missing": int(dataset.translations - checked),
            "still_null": int(still_null), "wrong": int(wrong), "duplicates": int(duplicates)}
