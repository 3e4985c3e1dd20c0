"""Engine creation shared by the app, Alembic, the backfill engine and the worker.

SQLite gets two fixes on every connection: foreign keys switched on (so ON DELETE
CASCADE is enforced as on PostgreSQL) and real transactions (pysqlite otherwise
defers BEGIN, which breaks transactional DDL and the batch invariant).
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from backend.config import normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _prepare_sqlite_file(url: sa.URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # pragma: no cover - trivial
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
        if mode == "IMMEDIATE":
            _begin_immediate(connection.connection.driver_connection)
        else:
            connection.exec_driver_sql("BEGIN")


def _begin_immediate(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried every millisecond while another connection writes.

    SQLite's own busy handler sleeps longer and longer (up to 100 ms between tries): a
    writer that commits and begins again within a millisecond (the in-process executor,
    batch after batch) would keep the lock from it until the run ends, so a `--cancel`
    waited for the whole run. Trying every millisecond finds the gap between two of
    that writer's transactions."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
    finally:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


SQLITE_BEGIN_OPTION = "sqlite_begin"
# Execution options of a transaction that reads before it writes (BEGIN IMMEDIATE on
# SQLite, nothing on PostgreSQL): for Session.connection(execution_options=...).
WRITE_TRANSACTION_OPTIONS = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}


def write_transaction(engine: Engine):
    """`engine.begin()` for a transaction that reads before it writes.

    On SQLite it takes the write lock at BEGIN (BEGIN IMMEDIATE, waiting for it under
    busy_timeout). A plain deferred BEGIN reads from a snapshot, and if another
    connection commits a write before this one's first write, SQLite refuses the
    upgrade at once with "database is locked" (busy_timeout does not apply). On
    PostgreSQL it is engine.begin()."""
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(**WRITE_TRANSACTION_OPTIONS)
    return engine.begin()


def create_db_engine(database_url: str, **kwargs) -> Engine:
    """Create an Engine for `database_url` with the project's per-dialect settings.

    `hide_parameters`: a failed statement's error (and so every log line and traceback
    that prints it) shows the SQL without its bound values, which are customers'
    emails, password hashes and addresses."""
    kwargs.setdefault("hide_parameters", True)
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        _prepare_sqlite_file(url)
        engine = sa.create_engine(url, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)
