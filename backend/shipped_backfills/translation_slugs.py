"""Per-locale URL slugs for product translations (expand: 0004, contract: 0007).

Python per row: Unicode-aware transliteration (backend.text.slugify) and a numeric
suffix on collision, which needs to see the slugs already taken in the locale.

A batch writes first and checks after, so that its slow part needs no lock: each
row's slug is proposed from what this process has handed out so far (SuffixFloors,
shared by its lanes, so two lanes never propose the same slug), the batch writes the
proposals in one statement, then takes its locales' slug locks (lock_locales) and
asks which of its slugs another row holds too (`duplicated`); those few rows pick
again with the table in view (free_slugs) and are written again. The locks are held
until the batch commits, and the app takes them before it picks a slug for a new
translation, so every writer checks after every earlier one has committed: of two
writers of one slug, the later one sees the first and moves. The unique constraint
only comes with 0007, after this backfill: until then the locks are what keep slugs
unique. They cover the check and the commit only (the bulk write, the costly part,
runs outside them), so batches run side by side (max_parallel = 2) and a shop write
that adds a translation waits only for the checks and commits of the batches ahead
of it in the lock's queue, never for a bulk write.
Lanes of one process share the floors and rarely clash; another process (a second
Celery worker) does not see them, so its proposals clash more often and take the
table-reading path more: still correct, slower.
"""
from __future__ import annotations

import threading

from backend.backfill.bulk import write_rows
from backend.backfill.definition import RowBackfill
from backend.backfill.registry import register
from backend.slugs import SuffixFloors, duplicated, free_slugs, lock_locales, translations
from backend.text import slugify


@register
class TranslationSlugs(RowBackfill):
    name = "translation_slugs"
    description = "product_translations.slug from the name, unique per locale"
    table = translations
    columns = ("id", "locale", "name")
    batch_size = 500
    max_parallel = 2

    def pending_filter(self):
        return translations.c.slug.is_(None)

    def __init__(self):
        # Where each base's free suffixes start, learnt by this process for one run of
        # one database (a worker may serve several; a new run may follow a downgrade).
        self._floors_of: tuple[str, object] | None = None
        self._floors = SuffixFloors()
        self._switching = threading.Lock()  # two lanes starting a run must not each start afresh

    def floors(self, connection) -> SuffixFloors:
        owner = (connection.engine.url.render_as_string(), connection.info.get("backfill_run_id"))
        with self._switching:
            if owner != self._floors_of:
                self._floors_of, self._floors = owner, SuffixFloors()
            return self._floors

    def batch_context(self, connection, rows):
        wanted = [(row["locale"], slugify(row["name"], row["locale"])) for row in rows]
        return {row["id"]: slug for row, slug in zip(rows, self.floors(connection).propose(wanted))}

    def transform(self, row, slugs):
        return {"slug": slugs[row["id"]]}

    def after_write(self, connection, rows, slugs):
        lock_locales(connection, {row["locale"] for row in rows})
        # A statement of its own after the lock's: its snapshot must be taken once the
        # lock is granted, or it would miss the slugs committed while we waited.
        clashes = duplicated(connection, [(row["locale"], slugs[row["id"]]) for row in rows])
        again = [row for row in rows if (row["locale"], slugs[row["id"]]) in clashes]
        if not again:
            return
        wanted = [(row["locale"], slugify(row["name"], row["locale"])) for row in again]
        chosen = free_slugs(connection, wanted, self.floors(connection))
        write_rows(connection, translations, "id", [(row["id"], {"slug": slug}) for row, slug in zip(again, chosen)])
