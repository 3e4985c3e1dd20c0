"""Choosing a free per-locale slug, for the slug backfill and for the app's writes.

Reading the taken slugs and writing the chosen one are two statements, so two
transactions choosing in one locale at once could both pick the same free slug (two
batches of the backfill after a split or a retry, or a batch and the app during the
expand phase, when only a plain index exists). On PostgreSQL the chooser therefore
holds a transaction-level advisory lock per locale until it commits.
"""
from __future__ import annotations

from typing import Iterable

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
# from the single-key locks of the schema (backend.schema.lock) and the data generator.
SLUG_LOCK_NAMESPACE = 0x51A6


def lock_locales(connection: Connection, locales: Iterable[str]) -> None:
    """PostgreSQL: until this transaction ends, no other transaction picks a slug in
    `locales`. Taken in sorted order by every caller, so that two transactions never
    wait for each other in a cycle; call it first with every locale you will pick in."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: one writer at a time already
    for locale in sorted(set(locales)):
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:locale))"),
                           {"namespace": SLUG_LOCK_NAMESPACE, "locale": locale})


def free_slug(connection: Connection, locale: str, name: str, reserved: Iterable[str] = ()) -> str:
    """`slugify(name)`, or the first of `-2`, `-3`... not used in `locale` nor in `reserved`."""
    lock_locales(connection, [locale])  # already held (and free to take again) after lock_locales
    base = slugify(name, locale)
    reserved = set(reserved)
    start = 1
    while True:
        candidates = [base if n == 1 else with_suffix(base, n) for n in range(start, start + CANDIDATES_PER_QUERY)]
        taken = set(
            connection.execute(
                sa.select(translations.c.slug).where(
                    translations.c.locale == locale, translations.c.slug.in_(candidates)
                )
            ).scalars()
        )
        for candidate in candidates:
            if candidate not in taken and candidate not in reserved:
                return candidate
        start += CANDIDATES_PER_QUERY
