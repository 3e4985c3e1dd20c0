"""The per-row suite's ceiling: a per-row backfill of the same translations without
the collision search, in one and two lanes.

translation_slugs searches for a free slug: it proposes, writes, then checks for
duplicates under per-locale locks held until commit (its lanes overlap everything but
that check and the commit). Until it wrote first and checked after, it took the locks
before reading the taken slugs, held them over its bulk write too, and a second lane
only waited (at 150k translations: 2 lanes 12,600 rows/s, 1 lane 13,200).

This backfill does the same per-row work on the same rows without that search: each
translation's slug is its base slug (backend.text.slugify) suffixed with its product
id (backend.text.with_suffix), unique per locale by construction (one translation per
product and locale), so its batches take no lock and run side by side. Same Python
per row, same bulk write of the same indexed column: it measures the lanes, not a
slug policy. Registered only by the benchmark (`register`), never in the app's catalog.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.definition import RowBackfill
from backend.backfill.registry import catalog
from backend.text import SLUG_MAX_LENGTH, slugify, with_suffix

BACKFILL = "bench_product_id_slugs"

translations = sa.table(
    "product_translations",
    sa.column("id", sa.BigInteger),
    sa.column("product_id", sa.BigInteger),
    sa.column("locale", sa.String),
    sa.column("name", sa.String),
    sa.column("slug", sa.String),
)


class ProductIdSlugs(RowBackfill):
    name = BACKFILL
    description = "benchmark only: product_translations.slug = the name's base slug + '-<product id>'"
    table = translations
    columns = ("id", "product_id", "locale", "name")
    batch_size = 500
    max_parallel = 4  # no lock, no shared state: batches never wait for each other

    def pending_filter(self):
        return translations.c.slug.is_(None)

    def transform(self, row, context):
        return {"slug": with_suffix(slugify(row["name"], row["locale"]), row["product_id"])}


def register() -> None:
    """Put the backfill in this process's catalog (the benchmark's processes only)."""
    if BACKFILL not in catalog:
        catalog.register(ProductIdSlugs)


# Every translation has its slug, and it is exactly with_suffix(base, product_id).
VERIFY_SQL = f"""
SELECT count(*),
       count(*) FILTER (WHERE t.slug IS NULL),
       count(*) FILTER (WHERE t.slug IS NOT NULL AND t.slug <>
           rtrim(left(e.base, {SLUG_MAX_LENGTH} - length('-' || t.product_id)), '-') || '-' || t.product_id)
FROM product_translations t JOIN bench_expected_slugs e ON e.id = t.id
"""
