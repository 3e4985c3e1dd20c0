"""Per-locale URL slugs for product translations (expand: 0004, contract: 0007).

Python per row: Unicode-aware transliteration (backend.text.slugify) and a numeric
suffix on collision, which needs to see the slugs already taken in the locale. It
runs one batch at a time (max_parallel = 1), and each batch holds its locales' slug
locks (backend.slugs.lock_locales) until it commits, so that no two batches (after a
split or a retry) nor a batch and the app, which picks slugs the same way for new
translations, can pick the same free slug.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.catalog import register
from backend.backfill.definition import RowBackfill
from backend.slugs import free_slug, lock_locales, translations


@register
class TranslationSlugs(RowBackfill):
    name = "translation_slugs"
    description = "product_translations.slug from the name, unique per locale"
    table = translations
    columns = ("id", "locale", "name")
    batch_size = 500
    max_parallel = 1

    def pending_filter(self):
        return translations.c.slug.is_(None)

    def transform_rows(self, connection, rows):
        lock_locales(connection, (row["locale"] for row in rows))
        chosen: dict[str, set[str]] = {}
        for row in rows:
            reserved = chosen.setdefault(row["locale"], set())
            slug = free_slug(connection, row["locale"], row["name"], reserved)
            reserved.add(slug)
            yield row["id"], {"slug": slug}
