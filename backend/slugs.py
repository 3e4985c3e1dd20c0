"""Choosing a free per-locale slug, for the slug backfill and for the app's writes."""
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


def free_slug(connection: Connection, locale: str, name: str, reserved: Iterable[str] = ()) -> str:
    """`slugify(name)`, or the first of `-2`, `-3`... not used in `locale` nor in `reserved`."""
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
