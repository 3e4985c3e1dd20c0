"""Choosing a free per-locale slug, for the slug backfill and for the app's writes.

Reading the taken slugs and writing the chosen one are two statements, so two
transactions choosing in one locale at once could both pick the same free slug (two
batches of the backfill after a split or a retry, or a batch and the app during the
expand phase, when only a plain index exists). On PostgreSQL the chooser therefore
holds a transaction-level advisory lock per locale until it commits.

Two ways to use it. The app locks, reads (free_slug) and writes. The slug backfill
writes proposals first (SuffixFloors.propose, no read), then locks and looks for
duplicates (`duplicated`), and picks again (free_slugs) for the rows that clash:
either way every writer looks at the table holding the lock, after every earlier
writer has committed, so of two writers of one slug the later one sees the first.
"""
from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.text import slugify, with_suffix

# Our own table definition (not the ORM model), so that the slug backfill keeps
# working whatever the models become later.
translations = sa.table(
    "product_translations",
    sa.column("id", sa.BigInteger),
    sa.column("locale", sa.String),
    sa.column("name", sa.String),
    sa.column("slug", sa.String),
)

CANDIDATES_PER_QUERY = 20
# pg_advisory_xact_lock(SLUG_LOCK_NAMESPACE, hashtext(locale)): the two-key form, apart
# from the single-key locks of the schema (backend.migrations.lock) and the data generator.
SLUG_LOCK_NAMESPACE = 0x51A6


def lock_locales(connection: Connection, locales: Iterable[str]) -> None:
    """PostgreSQL: until this transaction ends, no other transaction picks a slug in
    `locales`. Taken in sorted order by every caller, so that two transactions never
    wait for each other in a cycle; call it first with every locale you will pick in."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: one writer at a time already
    # One statement for all of them (a round trip per locale cost a batch five): the
    # function scan hands the array's elements to the lock in the array's order.
    connection.execute(sa.text(
        "SELECT count(pg_advisory_xact_lock(:namespace, hashtext(l.locale))) "
        "FROM unnest(CAST(:locales AS text[])) AS l (locale)"),
        {"namespace": SLUG_LOCK_NAMESPACE, "locales": sorted(set(locales))})


def free_slug(connection: Connection, locale: str, name: str) -> str:
    """`slugify(name)`, or the first of `-2`, `-3`... not used in `locale`."""
    lock_locales(connection, [locale])  # already held (and free to take again) after lock_locales
    return free_slugs(connection, [(locale, slugify(name, locale))])[0]


class SuffixFloors(dict):
    """Per (locale, base slug), the next suffix number this process has not used: a
    later batch starts there instead of at -2 again (a base's taken suffixes grow with
    the table, and re-reading them made each row cost more as the backfill went on).
    Only a hint: whatever is picked from it is checked against the table under the
    locale's lock, and a suffix skipped (freed since, or proposed by a batch that rolled
    back) merely stays unused. Shared by a process's lanes: `lock` guards it."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def propose(self, wanted: Sequence[tuple[str, str]]) -> list[str]:
        """A distinct slug for each (locale, base slug), in order, without reading the
        table: the base, or its suffix from the floor up. Each number handed out moves
        the floor past it, so the process's other lanes get other ones. A proposal is a
        guess until `duplicated` finds it alone in the table (under the locale's lock)."""
        chosen: dict[str, set[str]] = defaultdict(set)  # per locale: two bases can yield one slug
        proposed = []
        with self.lock:
            for key in wanted:
                locale, base = key
                number = self.get(key, 1)
                slug = _candidate(base, number)
                while slug in chosen[locale]:
                    number += 1
                    slug = _candidate(base, number)
                chosen[locale].add(slug)
                self[key] = number + 1
                proposed.append(slug)
        return proposed

    def raise_to(self, key: tuple[str, str], number: int) -> None:
        with self.lock:
            self[key] = max(self.get(key, 1), number)


def free_slugs(connection: Connection, wanted: Sequence[tuple[str, str]],
               floors: SuffixFloors | None = None) -> list[str]:
    """A distinct free slug for each (locale, base slug), in order: the base, or its
    lowest free numeric suffix. One query per round for the whole list, however many
    rows share a base: the first round asks for as many candidates per base as rows
    want it, each later one for twice as many as the last (at least 20) for the bases
    still short, so a base taken a thousand times costs about seven rounds, not fifty
    queries per row. Call it holding the
    locales' locks (lock_locales): a slug read as free must stay free until commit."""
    needed = Counter(wanted)
    found: dict[tuple[str, str], list[str]] = {key: [] for key in needed}
    chosen: dict[str, set[str]] = defaultdict(set)  # per locale: two bases can yield one slug
    floors = SuffixFloors() if floors is None else floors
    next_number = {key: floors.get(key, 1) for key in needed}
    span = dict(needed)  # first round: most bases are free, and need nothing more
    pending = list(needed)
    while pending:
        candidates = {key: _candidates(key[1], next_number[key], span[key]) for key in pending}
        taken = _taken(connection, [(key[0], slug) for key in pending for slug in candidates[key]])
        for key in pending:
            locale = key[0]
            for slug in candidates[key]:
                if len(found[key]) == needed[key]:
                    break
                if (locale, slug) not in taken and slug not in chosen[locale]:
                    found[key].append(slug)
                    chosen[locale].add(slug)
            next_number[key] += span[key]
            span[key] = max(2 * span[key], CANDIDATES_PER_QUERY)
        pending = [key for key in pending if len(found[key]) < needed[key]]
    for key in needed:  # every number up to the last one taken here is now in use
        floors.raise_to(key, _number(key[1], found[key][-1]) + 1)
    picked = {key: iter(slugs) for key, slugs in found.items()}
    return [next(picked[key]) for key in wanted]


def _number(base: str, slug: str) -> int:
    """1 for the base itself, n for its suffix -n."""
    return 1 if slug == base else int(slug.rsplit("-", 1)[1])


def _candidate(base: str, number: int) -> str:
    return base if number == 1 else with_suffix(base, number)


def _candidates(base: str, start: int, count: int) -> list[str]:
    return [_candidate(base, n) for n in range(start, start + count)]


# The slug queries on PostgreSQL: per (locale, slug) pair, a correlated subquery, which
# the planner runs as one probe of the (locale, slug) index per pair. As a join it chose
# by the statistics, and right after 0004 adds the column there are none for slugs:
# it merged the whole index with the pairs (a parallel scan of the table per batch,
# growing with it) where a probe per pair was hundreds of times cheaper.
_PAIRS = "unnest(CAST(:locales AS text[]), CAST(:slugs AS text[])) AS c (locale, slug)"
_HOLDERS = "product_translations t WHERE t.locale = c.locale AND t.slug = c.slug"


def duplicated(connection: Connection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (locale, slug) pairs more than one row holds, as this transaction
    sees the table: its own writes and what others committed. Call it holding the
    locales' locks, after writing the pairs: whoever wrote one of them too committed
    before (and is seen), or will check after this transaction commits (and sees it)."""
    if not pairs:
        return set()
    if connection.dialect.name == "postgresql":
        rows = connection.execute(sa.text(
            f"SELECT c.locale, c.slug FROM {_PAIRS} WHERE (SELECT count(*) FROM (SELECT 1 FROM {_HOLDERS} LIMIT 2) "
            "AS holder) > 1"),
            {"locales": [locale for locale, _ in pairs], "slugs": [slug for _, slug in pairs]})
        return {(locale, slug) for locale, slug in rows}
    found: set[tuple[str, str]] = set()
    for locale, chunk in _chunks_by_locale(pairs):
        found.update((locale, slug) for slug in connection.execute(
            sa.select(translations.c.slug).where(translations.c.locale == locale, translations.c.slug.in_(chunk))
            .group_by(translations.c.slug).having(sa.func.count() > 1)).scalars())
    return found


def _chunks_by_locale(pairs: Iterable[tuple[str, str]]) -> Iterable[tuple[str, list[str]]]:
    """SQLite: per locale, the slugs in lists short enough for its bound-parameter limit."""
    by_locale: dict[str, list[str]] = defaultdict(list)
    for locale, slug in pairs:
        by_locale[locale].append(slug)
    for locale, slugs in by_locale.items():
        for start in range(0, len(slugs), 500):
            yield locale, slugs[start:start + 500]


def _taken(connection: Connection, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (locale, slug) pairs exist: an index probe per pair on PostgreSQL."""
    if not pairs:
        return set()
    if connection.dialect.name == "postgresql":
        rows = connection.execute(sa.text(
            f"SELECT c.locale, c.slug FROM {_PAIRS} WHERE (SELECT true FROM {_HOLDERS} LIMIT 1)"),
            {"locales": [locale for locale, _ in pairs], "slugs": [slug for _, slug in pairs]})
        return {(locale, slug) for locale, slug in rows}
    taken: set[tuple[str, str]] = set()
    for locale, chunk in _chunks_by_locale(pairs):
        taken.update((locale, slug) for slug in connection.execute(
            sa.select(translations.c.slug).where(translations.c.locale == locale,
                                                 translations.c.slug.in_(chunk))).scalars())
    return taken
