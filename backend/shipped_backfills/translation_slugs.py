"""Per-locale URL slugs for product translations (expand: 0004, contract: 0007).

Python per row: Unicode-aware transliteration (backend.text.slugify) and a numeric
suffix on collision, which needs to see the slugs already taken in the locale.
`batch_context` takes the batch's locales' slug locks (backend.slugs.lock_locales)
and picks every row's slug with a few queries for the whole batch (free_slugs);
the locks are held until the batch commits, so that no two batches (after a split
or a retry) nor a batch and the app, which picks slugs the same way for new
translations, can pick the same free slug. The unique constraint only comes with
0007, after this backfill: until then the lock is what keeps slugs unique. It also
makes the batches of this backfill run one at a time (max_parallel = 1: a second
lane would be safe but only wait, since a batch has rows in every locale; a lock
per base slug would not do better, as any two batches share some bases; see
bench/idslugs.py); a shop write that adds a translation waits for at most one
batch, which the adaptive size keeps near 100 ms. The rows' base slugs are computed
before the locks are taken: that part needs no lock.
"""
from __future__ import annotations

from backend.backfill.registry import register
from backend.backfill.definition import RowBackfill
from backend.slugs import SuffixFloors, free_slugs, lock_locales, translations
from backend.text import slugify

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

    def __init__(self):
        # Where each base's free suffixes start, learnt by this process for one run of
        # one database (a worker may serve several; a new run may follow a downgrade).
        self._floors_of: tuple[str, object] | None = None
        self._floors = SuffixFloors()

    def floors(self, connection) -> SuffixFloors:
        owner = (connection.engine.url.render_as_string(), connection.info.get("backfill_run_id"))
        if owner != self._floors_of:
            self._floors_of, self._floors = owner, SuffixFloors()
        return self._floors

    def batch_context(self, connection, rows):
        wanted = [(row["locale"], slugify(row["name"], row["locale"])) for row in rows]  # before the lock: pure
        lock_locales(connection, (locale for locale, _ in wanted))
        slugs = free_slugs(connection, wanted, self.floors(connection))
        return {row["id"]: slug for row, slug in zip(rows, slugs)}

    def transform(self, row, slugs):
        return {"slug": slugs[row["id"]]}
