"""Keyset pagination on the primary key: each page costs one index range scan,
however deep the client pages, and rows inserted meanwhile do not shift pages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Mapping, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from backend.shop.validation import query_int

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: int | None  # the last id of the previous page


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: int | None  # None on the last page


def page_request(args: Mapping[str, str]) -> PageRequest:
    """`?limit=` (1..100, default 20) and `?cursor=`; out of range is a 400, not clamped,
    so that a client never silently receives fewer rows than it asked for."""
    limit = query_int(args, "limit", minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT)
    cursor = query_int(args, "cursor", minimum=0)
    return PageRequest(limit=limit, cursor=cursor)


def fetch_page(session: Session, statement: sa.Select, id_column, page: PageRequest, *,
               newest_first: bool = False) -> Page:
    """Run `statement` (a select of one entity) restricted to the page after `page.cursor`."""
    if page.cursor is not None:
        statement = statement.where(id_column < page.cursor if newest_first else id_column > page.cursor)
    order = id_column.desc() if newest_first else id_column.asc()
    rows = list(session.scalars(statement.order_by(order).limit(page.limit + 1)))
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    return Page(items=rows, next_cursor=rows[-1].id if has_more else None)
