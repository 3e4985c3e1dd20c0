"""Write a batch's new values back in one statement, not one round trip per row.

A per-row backfill transforms its rows in Python; writing each back with its own
UPDATE made the round trips most of a batch's time. On PostgreSQL the rows go in
one `UPDATE ... FROM unnest(<one array per column>)`: the driver quotes each column's
list as one array in C, where a `VALUES` list (execute_values) costs a Python call,
a cast and parentheses per row, and the server parses one expression per row instead
of per column. Elsewhere (SQLite, in process, where a round trip costs nothing), and
for array columns (unnest would flatten them), an executemany. Either way it runs on
the caller's connection, inside the batch's transaction, beside its done record.
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
        if connection.dialect.name == "postgresql" and _unnestable(table, (key, *columns)):
            changed += _update_from_arrays(connection, table, key, columns, rows, bounds)
        else:
            changed += _executemany(connection, table, key, columns, rows)
    return changed


def _unnestable(table: sa.TableClause, columns: Iterable[str]) -> bool:
    """An array per column needs each column's type to cast it to, and a column that is
    an array itself would be flattened: those take the executemany path (a column
    declared without a type, sa.column("x"), is one of them)."""
    return all(not isinstance(table.c[name].type, (sa.types.NullType, sa.ARRAY)) for name in columns)


def _update_from_arrays(connection: Connection, table: sa.TableClause, key: str, columns: tuple[str, ...],
                        rows: list[tuple[Any, Mapping[str, Any]]], bounds: tuple[Any, Any] | None) -> int:
    preparer = connection.dialect.identifier_preparer
    driver = connection.connection.driver_connection
    names = (key, *columns)
    arrays = ", ".join(f"CAST(%s AS {_sql_type(connection, table.c[name])}[])" for name in names)
    lists = ([key_value for key_value, _ in rows], *([values[name] for _, values in rows] for name in columns))
    bound = _bound(connection, table.c[key])
    with driver.cursor() as cursor:
        rendered = cursor.mogrify(arrays, lists).decode(encodings[driver.encoding])
        within = "" if bounds is None else cursor.mogrify(
            f" AND t.{preparer.quote(key)} BETWEEN {bound} AND {bound}", bounds).decode(encodings[driver.encoding])
    quoted = [preparer.quote(name) for name in names]
    assignments = ", ".join(f"{name} = v.{name}" for name in quoted[1:])
    statement = (f"UPDATE {preparer.format_table(table)} AS t SET {assignments} "
                 f"FROM unnest({rendered}) AS v ({', '.join(quoted)}) WHERE t.{quoted[0]} = v.{quoted[0]}{within}")
    # Rendered by the driver already: no parameter markers left for it to look for.
    return connection.execution_options(no_parameters=True).exec_driver_sql(statement).rowcount


def _sql_type(connection: Connection, column: sa.ColumnClause) -> str:
    """What a column's list is sent as (an array of it). Strings go as text (PostgreSQL
    then checks their length on assignment instead of truncating, as a cast to
    varchar(n) would); other types as their own, because the driver would otherwise
    send a NULL, a number or a date as text."""
    if isinstance(column.type, sa.String):
        return "text"
    return column.type.compile(dialect=connection.dialect)


def _bound(connection: Connection, column: sa.ColumnClause) -> str:
    """A placeholder for one key bound: a string untyped, as the column's own type compares it."""
    return "%s" if isinstance(column.type, sa.String) else f"CAST(%s AS {_sql_type(connection, column)})"


def _executemany(connection: Connection, table: sa.TableClause, key: str, columns: tuple[str, ...],
                 rows: list[tuple[Any, Mapping[str, Any]]]) -> int:
    statement = (sa.update(table).where(table.c[key] == sa.bindparam("k_"))
                 .values({name: sa.bindparam(f"v_{name}") for name in columns}))
    params = [{"k_": key_value, **{f"v_{name}": row[name] for name in columns}} for key_value, row in rows]
    return connection.execute(statement, params).rowcount
