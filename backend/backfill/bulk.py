"""Write a batch's new values back in one statement, not one round trip per row.

A per-row backfill transforms its rows in Python; writing each back with its own
UPDATE made the round trips most of a batch's time. On PostgreSQL the rows go in
one `UPDATE ... FROM (VALUES ...)` (what psycopg2's execute_values builds: each row
rendered by the driver's own quoting); elsewhere (SQLite, in process, where a round
trip costs nothing) an executemany. Either way it runs on the caller's connection,
inside the batch's transaction, beside its done record.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from psycopg2.extensions import encodings
from sqlalchemy.engine import Connection


def write_rows(connection: Connection, table: sa.TableClause, key: str,
               updates: Iterable[tuple[Any, Mapping[str, Any]]], *, bounds: tuple[Any, Any] | None = None) -> int:
    """Set, for each (key value, {column: value}), those columns of that row; return
    how many rows were updated. Rows setting different columns go in separate statements.

    `bounds` (lowest, highest key, as the database orders them) keep PostgreSQL's join
    to the batch's key range: without them it may hash the whole table for every batch."""
    by_columns: dict[tuple[str, ...], list[tuple[Any, Mapping[str, Any]]]] = defaultdict(list)
    for key_value, values in updates:
        by_columns[tuple(sorted(values))].append((key_value, values))
    changed = 0
    for columns, rows in by_columns.items():
        if connection.dialect.name == "postgresql" and _typed(table, (key, *columns)):
            changed += _update_from_values(connection, table, key, columns, rows, bounds)
        else:
            changed += _executemany(connection, table, key, columns, rows)
    return changed


def _typed(table: sa.TableClause, columns: Iterable[str]) -> bool:
    """VALUES needs each column's type to cast to; a column declared without one
    (sa.column("x")) takes the executemany path."""
    return all(not isinstance(table.c[name].type, sa.types.NullType) for name in columns)


def _update_from_values(connection: Connection, table: sa.TableClause, key: str, columns: tuple[str, ...],
                        rows: list[tuple[Any, Mapping[str, Any]]], bounds: tuple[Any, Any] | None) -> int:
    preparer = connection.dialect.identifier_preparer
    driver = connection.connection.driver_connection
    template = "(" + ", ".join(_placeholder(connection, table.c[name]) for name in (key, *columns)) + ")"
    with driver.cursor() as cursor:
        values = b",".join(cursor.mogrify(template, (key_value, *(row[name] for name in columns)))
                           for key_value, row in rows).decode(encodings[driver.encoding])
        within = "" if bounds is None else cursor.mogrify(
            f" AND t.{preparer.quote(key)} BETWEEN {_placeholder(connection, table.c[key])} "
            f"AND {_placeholder(connection, table.c[key])}", bounds).decode(encodings[driver.encoding])
    names = [preparer.quote(name) for name in (key, *columns)]
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    statement = (f"UPDATE {preparer.format_table(table)} AS t SET {assignments} "
                 f"FROM (VALUES {values}) AS v ({', '.join(names)}) WHERE t.{names[0]} = v.{names[0]}{within}")
    # Rendered by the driver already: no parameter markers left for it to look for.
    return connection.execution_options(no_parameters=True).exec_driver_sql(statement).rowcount


def _placeholder(connection: Connection, column: sa.ColumnClause) -> str:
    """Strings go untyped (PostgreSQL then checks their length on assignment instead of
    truncating, as a cast to varchar(n) would); other types are cast, because a VALUES
    list would otherwise type a NULL, a number or a date as text."""
    if isinstance(column.type, sa.String):
        return "%s"
    type_name = column.type.compile(dialect=connection.dialect)
    return f"%s::{type_name}"


def _executemany(connection: Connection, table: sa.TableClause, key: str, columns: tuple[str, ...],
                 rows: list[tuple[Any, Mapping[str, Any]]]) -> int:
    statement = (sa.update(table).where(table.c[key] == sa.bindparam("k_"))
                 .values({name: sa.bindparam(f"v_{name}") for name in columns}))
    params = [{"k_": key_value, **{f"v_{name}": row[name] for name in columns}} for key_value, row in rows]
    return connection.execute(statement, params).rowcount
