"""The per-row suite's peer: the slug backfill as one would hand-write it with psycopg2.

Keyset pages of `page_size` translations still without a slug, each in its own
transaction: the rows read FOR NO KEY UPDATE, the per-locale slug locks the app takes
too (backend.slugs.lock_locales' keys), each row's base slug by backend.text.slugify,
the free slugs picked for the whole page in rounds of one indexed query, the page
written with one `psycopg2.extras.execute_values` UPDATE ... FROM (VALUES ...),
COMMIT. The same transform and the same guarantees as the engine's batches, without
the engine (no run or batch records, no leases, no adaptive size): the ratio the
per-row suite reports is against this loop.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict

import psycopg2
from psycopg2.extras import execute_values

from backend.slugs import SLUG_LOCK_NAMESPACE
from backend.text import slugify, with_suffix

SELECT_PAGE = ("SELECT id, locale, name FROM product_translations WHERE id > %s AND slug IS NULL "
               "ORDER BY id LIMIT %s FOR NO KEY UPDATE")
LOCK_LOCALES = "SELECT count(pg_advisory_xact_lock(%s, hashtext(l.locale))) FROM unnest(%s::text[]) AS l (locale)"
TAKEN = ("SELECT t.locale, t.slug FROM product_translations t "
         "JOIN unnest(%s::text[], %s::text[]) AS c (locale, slug) ON t.locale = c.locale AND t.slug = c.slug")
UPDATE_PAGE = ("UPDATE product_translations AS t SET slug = v.slug FROM (VALUES %s) AS v (id, slug) "
               "WHERE t.id = v.id")


def pick_slugs(cursor, wanted: list[tuple[str, str]]) -> list[str]:
    """A distinct free slug per (locale, base): the base or its lowest free suffix."""
    need = Counter(wanted)
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    used: dict[str, set[str]] = defaultdict(set)
    start, span = {key: 1 for key in need}, dict(need)
    pending = list(need)
    while pending:
        candidates = {key: [key[1] if n == 1 else with_suffix(key[1], n) for n in range(start[key], start[key] + span[key])]
                      for key in pending}
        pairs = [(key[0], slug) for key in pending for slug in candidates[key]]
        cursor.execute(TAKEN, ([p[0] for p in pairs], [p[1] for p in pairs]))
        taken = set(cursor.fetchall())
        for key in pending:
            for slug in candidates[key]:
                if len(found[key]) == need[key]:
                    break
                if (key[0], slug) not in taken and slug not in used[key[0]]:
                    found[key].append(slug)
                    used[key[0]].add(slug)
            start[key] += span[key]
            span[key] = max(2 * span[key], 20)
        pending = [key for key in pending if len(found[key]) < need[key]]
    handed = {key: iter(slugs) for key, slugs in found.items()}
    return [next(handed[key]) for key in wanted]


def run(dsn: str, page_size: int) -> dict:
    """Every page until none is left; the rows written and each page's transaction time."""
    connection = psycopg2.connect(dsn)
    txn_ms: list[float] = []
    rows = last_id = 0
    try:
        with connection.cursor() as cursor:
            while True:
                started = time.perf_counter()
                cursor.execute(SELECT_PAGE, (last_id, page_size))
                page = cursor.fetchall()
                if not page:
                    connection.rollback()
                    break
                cursor.execute(LOCK_LOCALES, (SLUG_LOCK_NAMESPACE, sorted({locale for _, locale, _ in page})))
                slugs = pick_slugs(cursor, [(locale, slugify(name, locale)) for _, locale, name in page])
                execute_values(cursor, UPDATE_PAGE, [(id_, slug) for (id_, _, _), slug in zip(page, slugs)],
                               page_size=len(page))
                rows += cursor.rowcount
                connection.commit()
                txn_ms.append((time.perf_counter() - started) * 1000)
                last_id = page[-1][0]
    finally:
        connection.close()
    return {"rows": rows, "txn_ms": txn_ms}
