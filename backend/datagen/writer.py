"""Bulk writers: COPY on PostgreSQL, executemany on SQLite, never one ORM object at a time.

Both write inside the caller's transaction, so a failed run leaves nothing behind.
Each `write` receives one chunk of rows, which keeps memory bounded however many
rows are generated in total.
"""
from __future__ import annotations

import csv
import io
import time
from typing import Protocol, Sequence

import sqlalchemy as sa

from backend.datagen.errors import DatagenError

COPY_READ_SIZE = 1 << 20  # bytes handed to libpq per call; the default 8 KiB means many more calls


class Writer(Protocol):
    def stamp(self, epoch_seconds: float) -> object:
        """A timestamp column value in the form this database stores."""

    def write(self, table: str, columns: Sequence[str], rows: list[tuple], plain: bool = False) -> None:
        """`plain`: the values are numbers and words that no format needs to quote or escape."""

    def finish(self, tables: Sequence[str]) -> None:
        """Called once after the last write, with the tables that received rows."""


def writer_for(connection: sa.Connection) -> Writer:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return PostgresCopyWriter(connection)
    if dialect == "sqlite":
        return SqliteWriter(connection)
    raise DatagenError(f"backend.datagen supports PostgreSQL and SQLite, not {dialect}")


class PostgresCopyWriter:
    """COPY ... FROM STDIN (CSV, or text for plain rows): one statement per chunk, parsed by the server in C."""

    def __init__(self, connection: sa.Connection):
        self._dbapi = connection.connection.dbapi_connection
        self._quote = connection.dialect.identifier_preparer.quote

    @staticmethod
    def stamp(epoch_seconds: float) -> str:
        # strftime is several times faster than datetime.isoformat, and a million orders need one each.
        return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch_seconds))

    def write(self, table: str, columns: Sequence[str], rows: list[tuple], plain: bool = False) -> None:
        if plain:  # COPY's text format, filled by %-formatting: about twice as fast as the csv module
            line = "\t".join("%s" for _ in columns) + "\n"
            buffer, copy_format = io.StringIO("".join(map(line.__mod__, rows))), "text"
        else:
            buffer, copy_format = io.StringIO(), "csv"
            csv.writer(buffer, lineterminator="\n").writerows(rows)
            buffer.seek(0)
        column_list = ", ".join(self._quote(column) for column in columns)
        with self._dbapi.cursor() as cursor:
            cursor.copy_expert(f"COPY {self._quote(table)} ({column_list}) FROM STDIN WITH (FORMAT {copy_format})",
                               buffer, COPY_READ_SIZE)

    def finish(self, tables: Sequence[str]) -> None:
        """Move each id sequence past the ids we took, never backwards."""
        with self._dbapi.cursor() as cursor:
            for table in tables:
                cursor.execute(
                    "SELECT setval(seq, GREATEST(m, COALESCE(pg_sequence_last_value(seq), 0)))"
                    " FROM (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq,"
                    f" (SELECT MAX(id) FROM {self._quote(table)}) AS m) AS t WHERE seq IS NOT NULL",
                    (table,),
                )


class SqliteWriter:
    """executemany of prepared INSERTs inside the caller's (single, large) transaction."""

    def __init__(self, connection: sa.Connection):
        self._dbapi = connection.connection.dbapi_connection
        self._quote = connection.dialect.identifier_preparer.quote

    @staticmethod
    def stamp(epoch_seconds: float) -> str:
        # UTC text as SQLite's CURRENT_TIMESTAMP writes it, which SQLAlchemy's DateTime reads back.
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))

    def write(self, table: str, columns: Sequence[str], rows: list[tuple], plain: bool = False) -> None:
        column_list = ", ".join(self._quote(column) for column in columns)
        placeholders = ", ".join("?" for _ in columns)
        cursor = self._dbapi.cursor()
        try:
            cursor.executemany(f"INSERT INTO {self._quote(table)} ({column_list}) VALUES ({placeholders})", rows)
        finally:
            cursor.close()

    def finish(self, tables: Sequence[str]) -> None:
        """Nothing to do: SQLite's rowid (and sqlite_sequence) follow explicit ids."""
