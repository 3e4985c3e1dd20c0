"""PostgreSQL bulk-load mode: foreign keys and plain indexes are re-created after the load.

COPY itself is fast, but every row it inserts fires one foreign-key check per
constraint and updates every index: for a million orders (2.5 million items) that is
~6 million single-row lookups, several times the cost of the COPY. Re-creating
them afterwards checks each constraint with one join and builds each index with one
sort, as the PostgreSQL manual advises ("Populating a Database").

The definitions are read from the catalog and restored verbatim in the same
transaction, so a failed run restores them too (by rolling back). Only worthwhile
when the load is large, also compared with the table; while it lasts, the tables are
locked against other sessions. Unique indexes and those backing constraints (primary
keys, unique constraints) stay: they guard correctness and other keys may rely on them.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import sqlalchemy as sa

# Per new row, the checks and index updates cost roughly ten times what rebuilding
# costs per row already there (measured with COPY of orders and items). Below
# MIN_ROWS new rows, the locks and DDL are not worth it.
MIN_ROWS = 100_000
MIN_SHARE_OF_EXISTING = 0.2
MAINTENANCE_WORK_MEM = "256MB"

_FOREIGN_KEYS = """
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
FROM pg_constraint
WHERE contype = 'f' AND conrelid = ANY(CAST(:tables AS regclass[]))
ORDER BY conrelid, conname
"""
_PLAIN_INDEXES = """
SELECT format('DROP INDEX %s', indexrelid::regclass), pg_get_indexdef(indexrelid)
FROM pg_index
WHERE indrelid = ANY(CAST(:tables AS regclass[])) AND NOT indisunique AND NOT indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)
ORDER BY indrelid, indexrelid
"""


def tables_worth_it(planned_rows: dict[str, int], existing_rows: dict[str, int]) -> list[str]:
    """Tables receiving at least MIN_ROWS new rows, and at least a fifth of what they hold."""
    return [table for table, rows in planned_rows.items()
            if rows >= MIN_ROWS and rows >= MIN_SHARE_OF_EXISTING * existing_rows.get(table, 0)]


@contextlib.contextmanager
def constraints_deferred_to_end(connection: sa.Connection, tables: Sequence[str]) -> Iterator[None]:
    """Drop the foreign keys and plain indexes of `tables`, yield, then re-create them."""
    if not tables or connection.dialect.name != "postgresql":
        yield
        return
    foreign_keys = connection.execute(sa.text(_FOREIGN_KEYS), {"tables": list(tables)}).all()
    indexes = connection.execute(sa.text(_PLAIN_INDEXES), {"tables": list(tables)}).all()
    _run(connection, [drop for drop, _create in foreign_keys + indexes])
    yield
    # Index builds sort in memory up to this (default 64MB); for this transaction only.
    _run(connection, [f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'"])
    _run(connection, [create for _drop, create in indexes + foreign_keys])


def _run(connection: sa.Connection, statements: list[str]) -> None:
    # The DBAPI cursor takes the catalog's DDL verbatim (no parameter parsing of "%").
    with connection.connection.dbapi_connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
