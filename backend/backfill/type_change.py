"""The backfill of a column type change, declared once for every column converted.

A type change (backend.migrations.type_change) adds a shadow column of the new type
next to the old one; a trigger fills it for every row the shop writes, and this
backfill copies (and converts) the rows written before, in key ranges, like any
other set-based backfill: exactly once in effect, resumable, paced. A module listed
in BACKFILL_MODULES declares each conversion so that the workers know it:

    declare_type_change("order_items", "unit_price_cents", sa.BigInteger())

which registers the backfill `type_change:order_items.unit_price_cents`: it copies
`unit_price_cents` into `unit_price_cents_new`, is scheduled by the expand revision
and gated by the contract. (The way back, after a cleanup, is a plain batched copy in
the downgrade itself: a downgrade must run with `alembic downgrade` alone.)

The names of the shadow column, the trigger and the copies of indexes and
constraints live here too, so the revisions and the backfill agree on them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from backend.backfill.definition import SqlBackfill
from backend.backfill.registry import register

MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names silently
MAX_BACKFILL_NAME = 100  # backfill_runs.name
_SIMPLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# The values a narrower integer column can hold: the reverse copy leaves NULL where a
# value does not fit, so the shop never fails on it (the downgrade then refuses).
INTEGER_RANGES = {"smallint": (-2**15, 2**15 - 1), "integer": (-2**31, 2**31 - 1)}


class TypeChangeError(ValueError):
    """A type change that cannot be declared or run; the message is one line."""


@dataclass(frozen=True)
class TypeChangeNames:
    """Every name a conversion of `table.column` uses."""
    table: str
    column: str

    def __post_init__(self):
        for what, name in (("table", self.table), ("column", self.column)):
            if not _SIMPLE_NAME.match(name):
                raise TypeChangeError(f"type change: {what} {name!r} must be a lower-case unquoted identifier")
        if max(len(self.trigger), len(self.shadow), len(self.old)) > MAX_IDENTIFIER:
            raise TypeChangeError(f"type change: {self.table}.{self.column} makes names over {MAX_IDENTIFIER} "
                                  f"characters; PostgreSQL would truncate them")
        if len(self.backfill) > MAX_BACKFILL_NAME:
            raise TypeChangeError(f"type change: backfill name {self.backfill!r} is over "
                                  f"{MAX_BACKFILL_NAME} characters (backfill_runs.name)")

    @property
    def shadow(self) -> str:
        """The column of the new type, until the contract renames it to `column`."""
        return f"{self.column}_new"

    @property
    def old(self) -> str:
        """The column of the old type, after the contract (until the cleanup drops it)."""
        return f"{self.column}_old"

    @property
    def trigger(self) -> str:
        """The trigger (and its function) that keeps the spare column in sync."""
        return f"type_change_{self.table}_{self.column}"

    @property
    def backfill(self) -> str:
        return f"type_change:{self.table}.{self.column}"

    @staticmethod
    def copy_of(name: str) -> str:
        """The copy of an index or constraint built on the incoming column before the swap."""
        return f"{name[:MAX_IDENTIFIER - 3]}_tc"


def converted(value: sa.ColumnElement, to_type: sa.types.TypeEngine) -> sa.ColumnElement:
    """CAST(value AS to_type), or NULL where an integer does not fit a narrower type."""
    cast = sa.cast(value, to_type)
    bounds = INTEGER_RANGES.get(type_name(to_type))
    if bounds is None:
        return cast
    return sa.case((value.between(*bounds), cast), else_=sa.null())


def type_name(type_: sa.types.TypeEngine) -> str:
    from sqlalchemy.dialects import postgresql

    return type_.compile(dialect=postgresql.dialect()).lower()


def declare_type_change(table: str, column: str, new_type: sa.types.TypeEngine, *, key: str = "id",
                        key_type: str = "int", batch_size: int = 5000) -> TypeChangeNames:
    """Register the copy of `table.column` into its shadow column (see the module)."""
    names = TypeChangeNames(table, column)
    register(_copy_backfill(names.backfill, table, key, key_type, batch_size, source=column, target=names.shadow,
                            to_type=new_type, description=f"{table}.{names.shadow} = {column} as {type_name(new_type)}"))
    return names


def _copy_backfill(name: str, table: str, key: str, key_type: str, batch_size: int, *, source: str, target: str,
                   to_type: sa.types.TypeEngine, description: str) -> type[SqlBackfill]:
    columns = {key, source, target}
    walked = sa.table(table, *(sa.column(column) for column in sorted(columns)))

    class TypeChangeCopy(SqlBackfill):
        """One UPDATE per key range; rows the trigger already filled are not pending."""

        def pending_filter(self):
            return sa.and_(walked.c[target].is_(None), walked.c[source].isnot(None))

        def statement(self, where):
            return sa.update(walked).where(where).values({target: converted(walked.c[source], to_type)})

    attributes = dict(name=name, description=description, table=walked, key=key, key_type=key_type,
                      batch_size=batch_size, target_batch_seconds=0.1)
    # One class per conversion, named after it (the catalog tells classes apart by qualname).
    qualname = "TypeChangeCopy_" + re.sub(r"\W", "_", name)
    return type(qualname, (TypeChangeCopy,), {**attributes, "__qualname__": qualname})
