"""Measuring a migration while it runs: each revision's transaction, and on
PostgreSQL the table locks it holds.

`TransactionClock` listens to SQLAlchemy's transaction events on every engine of
one database URL (env.py builds its own engine, so we cannot be handed it). A
connection that writes `alembic_version` is a migration connection; its
transactions since the previous version write make up one revision (usually
exactly one transaction; more with an autocommit block). A transaction rolled
back (a backfill gate saying "not yet") is discarded: the revision is timed when
it finally applies.

The table locks each revision holds are sampled by locks.py.

The clock also follows each connection's `SET lock_timeout` (env.py sets it for the
revisions, `backend.migrations.online` lifts it for the CONCURRENTLY/VALIDATE steps) and
hears of each lock wait that env.py retried: a retried revision's earlier tries and
their locks count for that revision, because the shop saw them.
"""
from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

_VERSION_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?alembic_version\b", re.IGNORECASE)

_SET_LOCK_TIMEOUT = re.compile(
    r"^\s*SET\s+(?P<local>LOCAL\s+)?(?:SESSION\s+)?lock_timeout\s*(?:=|\bTO\b)\s*'?(?P<value>[^';\s]+)'?",
    re.IGNORECASE)
_SHOW = re.compile(r"^\s*SHOW\b", re.IGNORECASE)
_RESET_LOCK_TIMEOUT = re.compile(r"^\s*RESET\s+lock_timeout\b", re.IGNORECASE)
_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
DEFAULT = None  # lock_timeout not set by the migration: the server's (or database's) default


def parse_lock_timeout(value: str) -> int | None:
    """'200ms', '2s', '0', DEFAULT -> milliseconds (0: no timeout; None: the default)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip().lower())
    if match is None or match.group(2) not in _UNITS_MS and match.group(2):
        return DEFAULT
    return round(float(match.group(1)) * _UNITS_MS.get(match.group(2) or "ms", 1))


@dataclass
class Transaction:
    began: float
    ended: float = 0.0
    backend_pid: int | None = None
    autocommit: bool = False  # an autocommit block's statements (CONCURRENTLY, VALIDATE)
    lock_timeouts: set[int | None] = field(default_factory=set)  # in effect for its statements

    @property
    def seconds(self) -> float:
        return self.ended - self.began


@dataclass
class RevisionRun:
    """One revision applied (or reverted) in one or more transactions, with the lock
    waits its earlier tries hit."""
    revisions: list[str]
    transactions: list[Transaction]
    lock_waits: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.transactions[-1].ended - self.transactions[0].began

    def lock_timeouts(self, autocommit: bool = False) -> set[int | None]:
        """The lock_timeouts its statements ran under, in transactions or in autocommit blocks."""
        return {value for t in self.transactions if t.autocommit == autocommit for value in t.lock_timeouts}


_UNSET = object()


@dataclass
class _SessionTimeout:
    """A connection's lock_timeout as its SET/RESET statements left it: a SET in a
    transaction that rolls back is undone, a SET LOCAL ends with its transaction."""
    session: int | None = DEFAULT
    pending: object = _UNSET
    local: object = _UNSET

    def current(self) -> int | None:
        for value in (self.local, self.pending):
            if value is not _UNSET:
                return value  # type: ignore[return-value]
        return self.session

    def set(self, value: int | None, *, local: bool, autocommit: bool) -> None:
        if local:
            self.local = value
        elif autocommit:
            self.session, self.local = value, _UNSET
        else:
            self.pending, self.local = value, _UNSET

    def end(self, committed: bool) -> None:
        if committed and self.pending is not _UNSET:
            self.session = self.pending  # type: ignore[assignment]
        self.pending = self.local = _UNSET


class TransactionClock:
    def __init__(self, database_url: str):
        self._url = make_url(database_url)
        # keyed by Connection, weakly: a connection that is gone can never commit
        self._open: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._since_version: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._version_written: weakref.WeakSet = weakref.WeakSet()
        self._migration_connections: weakref.WeakSet = weakref.WeakSet()
        self._timeouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._discarded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._reported: list[str] = []
        self._waits: list[str] = []
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

    def lock_wait(self, message: str) -> None:
        """env.py's on_lock_wait: a revision's try timed out and is retried. The wait
        belongs to the next revision recorded (the retry starts at the one that timed
        out), and so do the rolled-back try's transactions and their locks."""
        self._waits.append(message)
        for connection, transactions in list(self._discarded.items()):
            self._since_version[connection] = transactions + self._since_version.get(connection, [])
        self._discarded.clear()

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
            self._open[connection] = Transaction(time.monotonic(), backend_pid=backend_pid(connection),
                                                 autocommit=_autocommit(connection))

    def _statement(self, connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        if not self._ours(connection):
            return
        if "lock_timeout" in statement and self._lock_timeout_set(connection, statement):
            return
        transaction = self._open.get(connection)
        if transaction is not None and not _SHOW.match(statement):  # SHOW takes no lock
            transaction.lock_timeouts.add(self._session_timeout(connection).current())
        if "alembic_version" in statement:
            self._migration_connections.add(connection)
            if _VERSION_WRITE.search(statement):
                self._version_written.add(connection)

    def _session_timeout(self, connection) -> _SessionTimeout:
        return self._timeouts.setdefault(connection, _SessionTimeout())

    def _lock_timeout_set(self, connection, statement: str) -> bool:
        """Follows SET/RESET lock_timeout; True when the statement was one."""
        if _RESET_LOCK_TIMEOUT.search(statement):
            value, local = DEFAULT, False
        elif match := _SET_LOCK_TIMEOUT.search(statement):
            value, local = parse_lock_timeout(match.group("value")), bool(match.group("local"))
        else:
            return False
        self._session_timeout(connection).set(value, local=local, autocommit=_autocommit(connection))
        return True

    def _commit(self, connection) -> None:
        transaction = self._open.pop(connection, None)
        if connection in self._timeouts:
            self._timeouts[connection].end(committed=True)
        if transaction is None or connection not in self._migration_connections:
            return
        transaction.ended = time.monotonic()
        self._since_version.setdefault(connection, []).append(transaction)
        if connection in self._version_written:
            self._version_written.discard(connection)
            self._discarded.pop(connection, None)
            self.runs.append(RevisionRun(self._reported or ["?"], self._since_version.pop(connection), self._waits))
            self._reported, self._waits = [], []

    def _rollback(self, connection) -> None:
        """A try that failed: set aside, in case a lock wait says it will be retried."""
        transaction = self._open.pop(connection, None)
        if connection in self._timeouts:
            self._timeouts[connection].end(committed=False)
        tried = self._since_version.pop(connection, [])
        if transaction is not None and connection in self._migration_connections:
            transaction.ended = time.monotonic()
            tried.append(transaction)
        if tried:
            self._discarded[connection] = tried
        self._version_written.discard(connection)
        if connection in self._migration_connections:
            self._reported = []


def _autocommit(connection) -> bool:
    """Whether the driver connection commits each statement (Alembic's autocommit_block)."""
    if connection.dialect.name != "postgresql":
        return False
    try:
        return connection.connection.dbapi_connection.autocommit is True
    except AttributeError:  # pragma: no cover - another driver
        return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def backend_pid(connection) -> int | None:
    if connection.dialect.name != "postgresql":
        return None
    try:
        return connection.connection.dbapi_connection.info.backend_pid
    except AttributeError:  # pragma: no cover - psycopg2 < 2.8
        return None
