"""Every revision on PostgreSQL runs under a short `lock_timeout`, retried.

An ALTER TABLE that waits for its ACCESS EXCLUSIVE lock (behind one long
transaction) queues every later statement on that table behind it: the shop stops
for as long as that transaction lives. With a short `lock_timeout` the ALTER gives
up instead, its revision's transaction rolls back (releasing every lock it took),
and the revision is tried again after a backoff with jitter, like GitLab's
`with_lock_retries` and pgroll's `--lock-timeout`. Each wait is reported with what
blocked it, and the last one fails the upgrade with one line naming the blocker.

A revision that must wait longer says so: `with lock_timeout(30): ...` from
`backend.migrations.online`. SQLite has no lock queue to stall: nothing changes there.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from backend.backfill.settings import whole_number
from backend.metrics import events

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of "canceling statement due to lock timeout"

T = TypeVar("T")


class LockRetriesExhausted(Exception):
    """The revision could not take its locks in the tries it had; the message is the
    whole one-line explanation, with the blocker."""


@dataclass(frozen=True)
class LockRetrySettings:
    timeout_ms: int = 200
    tries: int = 10
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "LockRetrySettings":
        """Read by backend.config.Config.from_env, which carries them as `lock_retry_settings`."""
        defaults = cls()
        return cls(
            timeout_ms=whole_number(env, "MIGRATION_LOCK_TIMEOUT_MS", defaults.timeout_ms, minimum=1),
            tries=whole_number(env, "MIGRATION_LOCK_TRIES", defaults.tries, minimum=1),
            backoff_seconds=defaults.backoff_seconds,
            backoff_max_seconds=defaults.backoff_max_seconds,
        )

    def sleep_before(self, attempt: int, rng: random.Random = random.Random()) -> float:
        """Seconds to wait before try `attempt` (2, 3, ...): exponential, capped, and
        jittered so that replicas retrying together do not collide again."""
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 2))
        return ceiling * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Blocker:
    """A session that held a lock the migration waited for."""
    pid: int
    state: str
    transaction_seconds: float | None
    query: str
    application: str

    def describe(self) -> str:
        age = f"in a transaction for {self.transaction_seconds:.1f} s" if self.transaction_seconds is not None else "no transaction"
        app = f" ({self.application})" if self.application else ""
        query = " ".join(self.query.split())
        if len(query) > 120:
            query = query[:117] + "..."
        return f"pid {self.pid}{app}, {self.state}, {age}, last query: {query or '-'}"


BLOCKERS_SQL = """
SELECT pid, coalesce(state, ''), extract(epoch FROM clock_timestamp() - xact_start), coalesce(query, ''),
       coalesce(application_name, '')
FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid)) ORDER BY xact_start
"""


class BlockerWatch:
    """Samples, from a connection of its own, who blocks the migrating session.

    A statement cancelled by lock_timeout no longer waits, so the blocker must be
    seen while the wait lasts: a thread asks `pg_blocking_pids` a few times per
    lock timeout. Its connection is in autocommit and holds no snapshot, so it never
    delays a concurrent index build."""

    def __init__(self, engine: Engine, pid: int, interval: float):
        self._engine, self._pid, self._interval = engine, pid, interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seen: list[Blocker] = []
        self._thread = threading.Thread(target=self._run, name="migration-blocker-watch", daemon=True)

    def __enter__(self) -> "BlockerWatch":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def take(self) -> list[Blocker]:
        """The blockers seen since the last call (the last sighting wins)."""
        with self._lock:
            seen, self._seen = self._seen, []
        return seen

    def _run(self) -> None:
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("SET application_name = 'migrations: lock watch'"))
                while not self._stop.wait(self._interval):
                    rows = connection.execute(text(BLOCKERS_SQL), {"pid": self._pid}).all()
                    if rows:
                        with self._lock:
                            self._seen = [Blocker(int(r[0]), r[1], float(r[2]) if r[2] is not None else None,
                                                  r[3], r[4]) for r in rows]
        except Exception:  # noqa: BLE001 - the watch only explains; the migration must not depend on it
            return


def is_lock_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "pgcode", None) == LOCK_NOT_AVAILABLE


def set_lock_timeout(connection: Connection, milliseconds: int) -> None:
    """Session-wide, outside any transaction: a rolled-back try must not undo it."""
    if connection.in_transaction():
        connection.commit()
    connection.exec_driver_sql(f"SET lock_timeout = '{int(milliseconds)}ms'")
    connection.commit()


def run_with_lock_retries(connection: Connection, run: Callable[[], T], settings: LockRetrySettings,
                          on_wait: Callable[[str], None], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `run` (which applies the pending revisions on `connection`) until it gets
    through without a lock timeout. Revisions applied before the one that timed out
    stay applied (one transaction per revision); the next try starts at that one."""
    set_lock_timeout(connection, settings.timeout_ms)
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    connection.commit()
    interval = max(0.01, settings.timeout_ms / 4000)
    try:
        with BlockerWatch(connection.engine, pid, interval) as watch:
            for attempt in range(1, settings.tries + 1):
                try:
                    return run()
                except DBAPIError as exc:
                    if not is_lock_timeout(exc):
                        raise
                    if connection.in_transaction():
                        connection.rollback()
                    blockers = watch.take()
                    where = _blocked_statement(exc)
                    if attempt == settings.tries:
                        raise LockRetriesExhausted(
                            f"gave up after {settings.tries} tries of lock_timeout {settings.timeout_ms} ms: "
                            f"{where} was blocked by {_blockers_text(blockers)}; end that transaction, or "
                            f"raise MIGRATION_LOCK_TIMEOUT_MS / MIGRATION_LOCK_TRIES") from None
                    pause = settings.sleep_before(attempt + 1)
                    events.ddl_lock_wait()
                    on_wait(f"lock wait: {where} timed out after {settings.timeout_ms} ms (try {attempt} of "
                            f"{settings.tries}), blocked by {_blockers_text(blockers)}; retrying in {pause:.1f} s")
                    sleep(pause)
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.exec_driver_sql("RESET lock_timeout")
        connection.commit()
    raise AssertionError("unreachable")


def _blocked_statement(exc: DBAPIError) -> str:
    statement = " ".join(str(exc.statement or "").split())
    return f"`{statement[:100]}{'...' if len(statement) > 100 else ''}`" if statement else "a statement"


def _blockers_text(blockers: list[Blocker]) -> str:
    if not blockers:
        return "a session that ended before it could be seen"
    return "; ".join(blocker.describe() for blocker in blockers)
