"""Measuring a migration while it runs: each revision's transaction, and on
PostgreSQL the table locks it holds.

`TransactionClock` listens to SQLAlchemy's transaction events on every engine of
one database URL (env.py builds its own engine, so we cannot be handed it). A
connection that writes `alembic_version` is a migration connection; its
transactions since the previous version write make up one revision (usually
exactly one transaction; more with an autocommit block). A transaction rolled
back (a backfill gate saying "not yet") is discarded: the revision is timed when
it finally applies.

`LockSampler` polls pg_locks from a second connection every few milliseconds and
keeps, per backend, when each (table, mode) was first seen. PostgreSQL keeps a
table lock until the end of the transaction, so a lock first seen at t in a
transaction that committed at c was held about c - t (at most one sampling
interval more).
"""
from __future__ import annotations

import re
import threading
import time
import weakref
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

_VERSION_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?alembic_version\b", re.IGNORECASE)

# What each table lock mode keeps others from doing (PostgreSQL documentation, 13.3.1).
LOCK_EFFECT = {
    "AccessExclusiveLock": "blocks reads and writes",
    "ExclusiveLock": "blocks writes",
    "ShareRowExclusiveLock": "blocks writes",
    "ShareLock": "blocks writes",
    "ShareUpdateExclusiveLock": "blocks other schema changes",
    "RowExclusiveLock": "blocks schema changes",
    "RowShareLock": "blocks schema changes",
    "AccessShareLock": "blocks schema changes",
}
# How much of the application's traffic a mode stops: 2 reads and writes, 1 writes,
# 0 only schema changes (and VACUUM).
TRAFFIC_BLOCKED = {"AccessExclusiveLock": 2, "ExclusiveLock": 1, "ShareRowExclusiveLock": 1, "ShareLock": 1}


@dataclass
class Transaction:
    began: float
    ended: float = 0.0
    backend_pid: int | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.began


@dataclass
class RevisionRun:
    """One revision applied (or reverted) in one or more transactions."""
    revisions: list[str]
    transactions: list[Transaction]

    @property
    def seconds(self) -> float:
        return self.transactions[-1].ended - self.transactions[0].began


class TransactionClock:
    def __init__(self, database_url: str):
        self._url = make_url(database_url)
        # keyed by Connection, weakly: a connection that is gone can never commit
        self._open: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._since_version: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._version_written: weakref.WeakSet = weakref.WeakSet()
        self._migration_connections: weakref.WeakSet = weakref.WeakSet()
        self._reported: list[str] = []
        self.runs: list[RevisionRun] = []

    def __enter__(self) -> "TransactionClock":
        for name, handler in self._handlers():
            event.listen(Engine, name, handler)
        return self

    def __exit__(self, *_exc) -> None:
        for name, handler in self._handlers():
            event.remove(Engine, name, handler)

    def _handlers(self):
        return (("begin", self._begin), ("commit", self._commit), ("rollback", self._rollback),
                ("before_cursor_execute", self._statement))

    def revision_applied(self, revision: str) -> None:
        """Called by Alembic's on_version_apply, inside the revision's transaction."""
        self._reported.append(revision)

    def take_runs(self) -> list[RevisionRun]:
        runs, self.runs = self.runs, []
        return runs

    # --- SQLAlchemy events ---

    def _ours(self, connection) -> bool:
        url = connection.engine.url
        return url.get_backend_name() == self._url.get_backend_name() and url.database == self._url.database \
            and url.host == self._url.host and url.port == self._url.port

    def _begin(self, connection) -> None:
        if self._ours(connection):
            self._open[connection] = Transaction(time.monotonic(), backend_pid=_backend_pid(connection))

    def _statement(self, connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        if "alembic_version" in statement and self._ours(connection):
            self._migration_connections.add(connection)
            if _VERSION_WRITE.search(statement):
                self._version_written.add(connection)

    def _commit(self, connection) -> None:
        transaction = self._open.pop(connection, None)
        if transaction is None or connection not in self._migration_connections:
            return
        transaction.ended = time.monotonic()
        self._since_version.setdefault(connection, []).append(transaction)
        if connection in self._version_written:
            self._version_written.discard(connection)
            self.runs.append(RevisionRun(self._reported or ["?"], self._since_version.pop(connection)))
            self._reported = []

    def _rollback(self, connection) -> None:
        self._open.pop(connection, None)
        self._since_version.pop(connection, None)
        self._version_written.discard(connection)
        if connection in self._migration_connections:
            self._reported = []


def _backend_pid(connection) -> int | None:
    if connection.dialect.name != "postgresql":
        return None
    try:
        return connection.connection.dbapi_connection.info.backend_pid
    except AttributeError:  # pragma: no cover - psycopg2 < 2.8
        return None


# --- PostgreSQL lock sampling ------------------------------------------------------------

_LOCKS = sa.text("""
    SELECT l.pid, c.relname, l.mode
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.granted AND l.locktype = 'relation' AND c.relkind IN ('r', 'p')
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      AND l.pid <> pg_backend_pid()
""")


@dataclass(frozen=True)
class LockHeld:
    table: str
    mode: str
    seconds: float

    @property
    def effect(self) -> str:
        return LOCK_EFFECT.get(self.mode, "")


@dataclass
class LockSampler:
    """Samples pg_locks on a background thread; `longest_lock(transaction)` answers
    which table lock that transaction held longest."""
    database_url: str
    interval: float = 0.002
    _sightings: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    samples: int = 0
    error: str | None = None

    def __enter__(self) -> "LockSampler":
        self._engine = sa.create_engine(self.database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self._connection = self._engine.connect()
        self._thread = threading.Thread(target=self._run, name="pg-lock-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._connection.close()
        self._engine.dispose()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                before = time.monotonic()
                rows = self._connection.execute(_LOCKS).all()
                seen = (before + time.monotonic()) / 2
                for pid, table, mode in rows:
                    self._sightings.setdefault((pid, table, mode), []).append(seen)
                self.samples += 1
                self._stop.wait(self.interval)
        except Exception as exc:  # the rehearsal reports it instead of lock numbers
            self.error = f"{type(exc).__name__}: {exc}"

    def locks(self, transaction: Transaction) -> list[LockHeld]:
        """The table locks the transaction was seen holding, each until its commit."""
        held: list[LockHeld] = []
        for (pid, table, mode), times in list(self._sightings.items()):
            if pid != transaction.backend_pid:
                continue
            inside = [t for t in times if transaction.began <= t <= transaction.ended]
            if inside:
                held.append(LockHeld(table, mode, max(transaction.ended - min(inside), 0.0)))
        return held


def worst(locks: list[LockHeld]) -> LockHeld | None:
    """The lock that stops the most traffic; of those, the one held longest."""
    return max(locks, key=lambda lock: (TRAFFIC_BLOCKED.get(lock.mode, 0), lock.seconds), default=None)


def longest(locks: list[LockHeld]) -> LockHeld | None:
    """The lock held longest, among those stopping some traffic if there are any."""
    return max(locks, key=lambda lock: (TRAFFIC_BLOCKED.get(lock.mode, 0) > 0, lock.seconds), default=None)
