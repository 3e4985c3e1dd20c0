"""A cross-process lock around schema upgrades.

Several web replicas (or `run_migrations.py` processes) may start at once; exactly
one applies the pending revisions while the others wait, then find nothing to do.

PostgreSQL: a session-level advisory lock held on its own connection, so the
migration's own transactions can commit freely. The waiters poll
`pg_try_advisory_lock` in autocommit rather than block in `pg_advisory_lock`: a
backend blocked inside a statement holds a snapshot, and `CREATE INDEX
CONCURRENTLY` (like `VALIDATE CONSTRAINT` and `ADD CONSTRAINT ... USING INDEX` after
it) waits for every snapshot older than its own, so the holder would wait for the
waiters that wait for it, forever. Between two polls a waiter holds nothing.

SQLite: a file lock beside the file.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

from filelock import FileLock
from sqlalchemy import text
from sqlalchemy.engine import Engine

# An arbitrary constant shared by every process of this project (pg_locks shows it
# as objid, with classid 0, for the one that holds it). Never change it: a process
# of the previous release must take the same lock as this one.
ADVISORY_LOCK_KEY = 0x5F3759DF

# What pg_stat_activity shows for the lock's connection: operators (and the racing
# tests) can tell who waits and who migrates.
WAITING = "migrations: waiting for the schema lock"
HOLDING = "migrations: holding the schema lock"

POLL_SECONDS = 0.1


@contextlib.contextmanager
def schema_lock(engine: Engine, poll_seconds: float = POLL_SECONDS) -> Iterator[None]:
    backend = engine.dialect.name
    if backend == "postgresql":
        with _postgresql_lock(engine, poll_seconds):
            yield
    elif backend == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # Named after the resolved path: a symlink to the database file and the file
        # itself are one database and must take one lock.
        with FileLock(f"{Path(engine.url.database).resolve()}.migrate.lock"):
            yield
    else:
        yield


@contextlib.contextmanager
def _postgresql_lock(engine: Engine, poll_seconds: float) -> Iterator[None]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": WAITING})
        while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}).scalar():
            time.sleep(poll_seconds)
        connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": HOLDING})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            # The pool may hand this connection to someone else: it must not keep the label.
            connection.execute(text("RESET application_name"))
