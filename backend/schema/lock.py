"""A cross-process lock around schema upgrades.

Several web replicas (or `run_migrations.py` processes) may start at once; exactly
one applies the pending revisions while the others wait, then find nothing to do.
PostgreSQL: a session-level advisory lock held on its own connection, so the
migration's own transactions can commit freely. SQLite: a file lock beside the file.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from filelock import FileLock
from sqlalchemy import text
from sqlalchemy.engine import Engine

# Any constant shared by every process of this project; derived from the name so
# that it is recognisable in pg_locks (classid/objid).
ADVISORY_LOCK_KEY = 0x5F3759DF


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    backend = engine.dialect.name
    if backend == "postgresql":
        with engine.connect() as lock_connection:
            lock_connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            lock_connection.commit()
            try:
                yield
            finally:
                lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                lock_connection.commit()
    elif backend == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # Named after the resolved path: a symlink to the database file and the file
        # itself are one database and must take one lock.
        with FileLock(f"{Path(engine.url.database).resolve()}.migrate.lock"):
            yield
    else:
        yield
