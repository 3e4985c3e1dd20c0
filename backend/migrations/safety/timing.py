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
transaction that committed at c was held about c - t, and at most c - (the sample
before t): the sampler shares the GIL with the migration, so samples can be further
apart than the interval asked for.

The clock also follows each connection's `SET lock_timeout` (env.py sets it for the
revisions, `backend.migrations.online` lifts it for the CONCURRENTLY/VALIDATE steps) and
hears of each lock wait that env.py retried: a retried revision's earlier tries and
their locks count for that revision, because the shop saw them.
"""
from __future__ import annotations

import bisect
import re
import threading
import time
import weakref
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

_VERSION_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?alembic_version\b", re.IGNORECASE)

# How much of the application's traffic a table lock mode stops (PostgreSQL
# documentation, 13.3.1): 2 reads and writes, 1 writes (SELECT goes on), 0 neither.
# SHARE UPDATE EXCLUSIVE (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT) and the
# weaker modes only stop schema changes and VACUUM, which the shop does not run.
TRAFFIC_BLOCKED = {"AccessExclusiveLock": 2, "ExclusiveLock": 1, "ShareRowExclusiveLock": 1, "ShareLock": 1}
EFFECT = {2: "blocks reads and writes", 1: "blocks writes", 0: "blocks neither"}

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
            self._open[connection] = Transaction(time.monotonic(), backend_pid=_backend_pid(connection),
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
    seconds: float  # from its first sighting to the end of its transaction
    at_most: float | None = None  # from the sample before that (or the transaction's start)

    @property
    def blocks(self) -> int:
        """2 reads and writes, 1 writes, 0 neither (see TRAFFIC_BLOCKED)."""
        return TRAFFIC_BLOCKED.get(self.mode, 0)

    @property
    def effect(self) -> str:
        return EFFECT[self.blocks] if self.mode.endswith("Lock") else ""


@dataclass
class LockSampler:
    """Samples pg_locks on a background thread; `locks(transaction)` answers which
    table locks that transaction held, and for how long. Its connection is in
    autocommit: idle between samples it holds no snapshot, so CREATE INDEX
    CONCURRENTLY in the revisions it watches never waits for it."""
    database_url: str
    interval: float = 0.002
    _sightings: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)
    _times: list[float] = field(default_factory=list)
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

    @property
    def pid(self) -> int | None:
        return _backend_pid(self._connection)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                before = time.monotonic()
                rows = self._connection.execute(_LOCKS).all()
                seen = (before + time.monotonic()) / 2
                for pid, table, mode in rows:
                    self._sightings.setdefault((pid, table, mode), []).append(seen)
                self._times.append(seen)
                self.samples += 1
                self._stop.wait(self.interval)
        except Exception as exc:  # the rehearsal reports it instead of lock numbers
            self.error = f"{type(exc).__name__}: {exc}"

    def locks(self, transaction: Transaction) -> list[LockHeld]:
        """The table locks the transaction was seen holding, each until its commit."""
        held: list[LockHeld] = []
        times = list(self._times)
        for (pid, table, mode), seen in list(self._sightings.items()):
            if pid != transaction.backend_pid:
                continue
            inside = [t for t in seen if transaction.began <= t <= transaction.ended]
            if inside:
                first = min(inside)
                before = times[bisect.bisect_left(times, first) - 1] if times and times[0] < first else 0.0
                held.append(LockHeld(table, mode, max(transaction.ended - first, 0.0),
                                     max(transaction.ended - max(before, transaction.began), 0.0)))
        return held

    def longest_gap(self, began: float, ended: float) -> float:
        """The longest time between two samples from `began` to `ended`: a lock held
        that long or less could go unseen."""
        times = [began] + [t for t in list(self._times) if began < t < ended] + [ended]
        return max(b - a for a, b in zip(times, times[1:]))


def worst(locks: list[LockHeld]) -> LockHeld | None:
    """The lock that stops the most traffic; of those, the one held longest."""
    return max(locks, key=lambda lock: (lock.blocks, lock.seconds), default=None)


def longest(locks: list[LockHeld]) -> LockHeld | None:
    """The schema-change lock (SHARE UPDATE EXCLUSIVE or stronger) held longest,
    whatever it blocks: with online steps, the long part that blocks neither (CREATE
    INDEX CONCURRENTLY, VALIDATE). The weaker modes are what reads and writes take
    (alembic_version, the backfill tables), not what the revision's DDL waits for."""
    schema = [lock for lock in locks if lock.blocks or lock.mode == "ShareUpdateExclusiveLock"]
    return max(schema, key=lambda lock: lock.seconds, default=None)


def longest_blocking(locks: list[LockHeld]) -> LockHeld | None:
    """Of the locks that stop reads or writes, the one that may have been held longest."""
    return max((lock for lock in locks if lock.blocks), key=lambda lock: lock.at_most or lock.seconds, default=None)
