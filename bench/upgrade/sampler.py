"""What the database shows every few milliseconds, on a connection of its own: the
revision in alembic_version, whether the schema lock is held, and every backend of
the scratch database waiting on a lock (wait_event_type = 'Lock'), with whom it waits
for. One round trip per sample.

A wait's length is clock_timestamp() - query_start of the waiting backend: exact for
the shop's single-statement transactions, an upper bound for a migration statement
that ran a while before it had to wait.
"""
from __future__ import annotations

import threading
import time

import psycopg2

from bench.load import dsn
from bench.upgrade.attribution import LockWait

APPLICATION_NAME = "bench-upgrade-sampler"
SAMPLE_SQL = """
SELECT (SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version),
       EXISTS (SELECT 1 FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %(high)s
                 AND l.objid::bigint = %(low)s AND l.objsubid = 1
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())),
       (SELECT json_agg(json_build_array(
                   w.application_name, left(w.query, 200),
                   extract(epoch FROM clock_timestamp() - w.query_start) * 1000,
                   (SELECT json_agg(json_build_array(b.application_name, left(b.query, 200), b.state))
                    FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid)))))
        FROM pg_stat_activity w
        WHERE w.datname = current_database() AND w.wait_event_type = 'Lock' AND w.pid <> pg_backend_pid())
"""


def describe(application_name: str | None, query: str | None, state: str | None = None) -> str:
    """`who: what`, short enough for a table cell; a blocker that is not running a
    statement (idle in transaction) shows its state and its last statement."""
    who = (application_name or "?") + (f" ({state})" if state and state != "active" else "")
    what = " ".join((query or "").split())
    return f"{who}: {what[:70]}{'…' if len(what) > 70 else ''}"


def schema_lock_key() -> int:
    from backend.migrations.lock import ADVISORY_LOCK_KEY

    return ADVISORY_LOCK_KEY


class Sampler:
    def __init__(self, url: str, interval_s: float):
        self.url, self.interval_s = url, interval_s
        self.versions: list[tuple[float, str | None]] = []  # (when, alembic_version) at each change
        self.lock_starts: list[float] = []  # when the schema lock was seen taken
        self.waits: list[LockWait] = []
        self.samples = 0
        self.errors: list[str] = []
        key = schema_lock_key()
        self._params = {"high": key >> 32, "low": key & 0xFFFFFFFF}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._connection = psycopg2.connect(dsn(url, APPLICATION_NAME))
        self._connection.autocommit = True

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        held, version = False, object()
        try:
            with self._connection.cursor() as cursor:
                while not self._stop.is_set():
                    before = time.time()
                    try:
                        cursor.execute(SAMPLE_SQL, self._params)
                        current, locked, waiting = cursor.fetchone()
                    except psycopg2.Error as exc:
                        self.errors.append(str(exc).strip()[:200])
                        self._stop.wait(self.interval_s)
                        continue
                    at = (before + time.time()) / 2
                    self.samples += 1
                    if current != version:
                        self.versions.append((at, current))
                        version = current
                    if locked and not held:
                        self.lock_starts.append(at)
                    held = locked
                    for waiter_app, waiter_query, waited_ms, blockers in waiting or ():
                        blocker = "; ".join(describe(*b) for b in blockers or ()) or "(gone)"
                        self.waits.append(LockWait(at, float(waited_ms or 0.0), describe(waiter_app, waiter_query),
                                                   blocker))
                    self._stop.wait(max(self.interval_s - (time.time() - before), 0.0))
        finally:
            self._connection.close()
