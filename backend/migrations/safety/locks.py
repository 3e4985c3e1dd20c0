"""Which table locks a migration holds on PostgreSQL, and for how long.

`LockSampler` polls pg_locks from a second connection every few milliseconds and
keeps, per backend, when each (table, mode) was first seen. PostgreSQL keeps a
table lock until the end of the transaction, so a lock first seen at t in a
transaction that committed at c was held about c - t, and at most c - (the sample
before t): the sampler shares the GIL with the migration, so samples can be further
apart than the interval asked for.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from backend.migrations.safety.timing import Transaction, backend_pid

# How much of the application's traffic a table lock mode stops (PostgreSQL
# documentation, 13.3.1): 2 reads and writes, 1 writes (SELECT goes on), 0 neither.
# SHARE UPDATE EXCLUSIVE (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT) and the
# weaker modes only stop schema changes and VACUUM, which the shop does not run.
TRAFFIC_BLOCKED = {"AccessExclusiveLock": 2, "ExclusiveLock": 1, "ShareRowExclusiveLock": 1, "ShareLock": 1}
EFFECT = {2: "blocks reads and writes", 1: "blocks writes", 0: "blocks neither"}


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
        return backend_pid(self._connection)

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
