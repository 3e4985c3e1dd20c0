"""The concurrent shop traffic that runs through every method: `python -m bench.load`.

Two connections in autocommit, each on its own thread and its own fixed schedule,
half of `--rate` each (open loop: the schedule does not wait for the database; a
statement whose slot has passed, behind a blocked one, is sent as soon as the
connection is free, as an application's queue would):

- single-row UPDATEs of a random existing order's status;
- INSERTs of a new order with 1 to 3 items, one statement (a data-modifying CTE),
  with total_cents written as the app writes it from revision 0003 on.

Each statement's start (wall clock, to match the methods' windows), its latency
(sent -> answered) and its latency from its slot (scheduled -> answered: what the
user behind it waited, queueing included; the correction for coordinated omission)
are recorded. A third connection samples pg_stat_activity every `--sample-ms`: for
our statements waiting on a lock (wait_event_type = 'Lock') it keeps, per blocked
statement, the longest wait seen (exact to one sample); other wait events of our
active statements (WAL writes, I/O...) are counted, and every sample of an active
statement of ours is kept (pid, wait event or none: on CPU), so that the report can
say what the slowest writes waited on. When the server is on this machine, each
statement also records its backend's and its own thread's time on the CPU and on the
run queue (/proc/<pid>/schedstat): a write that waited for a core, not for the
database, shows there.

Prints "ready" on stdout once connected, runs until SIGTERM (or stdin closes), then
writes everything to `--out` as JSON.
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time

import psycopg2
from sqlalchemy.engine import make_url

from backend.config import normalize_database_url

APPLICATION_NAME = "bench-load"
DRAIN_SECONDS = 30.0
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")

UPDATE_SQL = "UPDATE orders SET status = %s, updated_at = now() WHERE id = %s"
INSERT_SQL = """
WITH new_order AS (
    INSERT INTO orders (user_id, status, currency, total_cents) VALUES (%s, 'pending', 'EUR', %s) RETURNING id
)
INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
SELECT new_order.id, v.product_id, v.quantity, v.unit_price_cents
FROM new_order, (VALUES {values}) AS v (product_id, quantity, unit_price_cents)
"""
WAITS_SQL = """
SELECT pid, extract(epoch FROM query_start), extract(epoch FROM clock_timestamp() - query_start) * 1000,
       wait_event_type, wait_event
FROM pg_stat_activity
WHERE application_name = %s AND state = 'active'
"""


def schedstat(path: str | None) -> tuple[int, int]:
    """(ns on the CPU, ns waiting on the run queue) of a task; (0, 0) if unreadable."""
    if path is None:
        return 0, 0
    try:
        with open(path) as f:
            on_cpu, queued, _ = f.read().split()
        return int(on_cpu), int(queued)
    except (OSError, ValueError):
        return 0, 0


def dsn(url: str, application_name: str = APPLICATION_NAME) -> str:
    """A libpq connection string from an SQLAlchemy URL."""
    u = make_url(normalize_database_url(url))
    parts = {"host": u.host, "port": u.port, "dbname": u.database, "user": u.username, "password": u.password,
             "application_name": application_name}
    return " ".join(f"{key}='{str(value)}'" for key, value in parts.items() if value is not None)


def _local(url: str) -> bool:
    """The server runs on this machine, so its backends' /proc entries are its own."""
    return (make_url(normalize_database_url(url)).host or "localhost") in ("localhost", "127.0.0.1", "::1")


def connect(url: str):
    connection = psycopg2.connect(dsn(url))
    connection.autocommit = True
    return connection


class Load:
    def __init__(self, url: str, rate: float, sample_ms: float, seed: int):
        self.url, self.rate, self.sample_ms = url, rate, sample_ms
        self.stop = threading.Event()
        # (kind, wall start, latency ms, latency from its slot ms, wall time of its slot, backend pid,
        #  backend ms on CPU, backend ms on the run queue, this thread's ms on the run queue)
        self.statements: list[tuple] = []
        self.activity: list[tuple[float, int, str]] = []  # (wall time, pid, "type:event" or "CPU") per sample
        self.stop_at: float | None = None  # perf_counter() when asked to stop
        self.waits: list[tuple[float, str]] = []  # (wall time, "type:event") of non-lock waits seen
        self.errors: list[str] = []
        self.lock_waits: dict[tuple[int, float], float] = {}  # (pid, query start) -> longest wait seen, ms
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        with connect(url) as probe, probe.cursor() as cursor:
            cursor.execute("SELECT max(id) FROM orders")
            self.max_order_id = cursor.fetchone()[0] or 0
            cursor.execute("SELECT id FROM users ORDER BY id")
            self.user_ids = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT id, price_cents FROM products ORDER BY id")
            self.products = cursor.fetchall()
        probe.close()

    def _paced(self, kind: str, rate: float, statement) -> None:
        try:
            connection = connect(self.url)
        except Exception as exc:  # pragma: no cover - reported in the output
            self.errors.append(f"{kind}: {exc}")
            return
        rng = random.Random(self._rng.random())
        interval = 1.0 / rate
        pid = connection.get_backend_pid()
        backend = f"/proc/{pid}/schedstat" if _local(self.url) else None
        own = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        slot = time.perf_counter()
        with connection.cursor() as cursor:
            while True:
                now = time.perf_counter()
                if self.stop.is_set():
                    # Drain: the slots that fell due before the stop still run (behind a
                    # blocked statement they queued up), bounded in time.
                    if slot > self.stop_at or now - self.stop_at > DRAIN_SECONDS:
                        break
                elif now < slot:
                    self.stop.wait(slot - now)
                    continue
                sql, params = statement(rng)
                backend_before, own_before = schedstat(backend), schedstat(own)
                wall, started = time.time(), time.perf_counter()
                try:
                    cursor.execute(sql, params)
                except Exception as exc:
                    self.errors.append(f"{kind}: {str(exc).strip()[:200]}")
                    slot += interval
                    continue
                finished = time.perf_counter()
                backend_after, own_after = schedstat(backend), schedstat(own)
                with self._lock:
                    self.statements.append((kind, wall, (finished - started) * 1000, (finished - slot) * 1000,
                                            wall - (started - slot), pid,
                                            (backend_after[0] - backend_before[0]) / 1e6,
                                            (backend_after[1] - backend_before[1]) / 1e6,
                                            (own_after[1] - own_before[1]) / 1e6))
                slot += interval
        connection.close()

    def request_stop(self) -> None:
        if self.stop_at is None:
            self.stop_at = time.perf_counter()
        self.stop.set()

    def _update(self, rng: random.Random):
        return UPDATE_SQL, (rng.choice(STATUSES), rng.randint(1, self.max_order_id))

    def _insert(self, rng: random.Random):
        lines = [(product_id, rng.choice((1, 1, 1, 2, 3)), price)
                 for product_id, price in rng.sample(self.products, rng.randint(1, min(3, len(self.products))))]
        total = sum(quantity * price for _, quantity, price in lines)
        values = ", ".join(["(%s::bigint, %s::int, %s::int)"] * len(lines))
        params = [rng.choice(self.user_ids), total, *(value for line in lines for value in line)]
        return INSERT_SQL.format(values=values), params

    def _sample_locks(self) -> None:
        connection = psycopg2.connect(dsn(self.url).replace(APPLICATION_NAME, APPLICATION_NAME + "-sampler"))
        connection.autocommit = True
        with connection.cursor() as cursor:
            while not self.stop.wait(self.sample_ms / 1000):
                cursor.execute(WAITS_SQL, (APPLICATION_NAME,))
                now = time.time()
                for pid, query_start, waited_ms, wait_type, wait_event in cursor.fetchall():
                    self.activity.append((now, pid, f"{wait_type}:{wait_event}" if wait_type else "CPU"))
                    if wait_type is None:
                        continue
                    if wait_type == "Lock":
                        key = (pid, float(query_start))
                        self.lock_waits[key] = max(self.lock_waits.get(key, 0.0), float(waited_ms))
                    elif wait_type != "Client":
                        self.waits.append((now, f"{wait_type}:{wait_event}"))
        connection.close()

    def run(self) -> None:
        threads = []
        if self.max_order_id and self.user_ids and self.products:
            half = self.rate / 2
            threads = [
                threading.Thread(target=self._paced, args=("update", half, self._update), daemon=True),
                threading.Thread(target=self._paced, args=("insert", half, self._insert), daemon=True),
            ]
        threads.append(threading.Thread(target=self._sample_locks, daemon=True))
        for thread in threads:
            thread.start()
        print("ready", flush=True)
        self.stop.wait()
        if self.stop_at is None:
            self.stop_at = time.perf_counter()
        for thread in threads:
            thread.join(30)

    def as_dict(self) -> dict:
        return {
            "rate": self.rate,
            "sample_ms": self.sample_ms,
            "statements": [list(s) for s in self.statements],
            "waits": [list(w) for w in self.waits],
            "activity": [list(a) for a in self.activity],
            "errors": self.errors[:50],
            "lock_waits": [[pid, start, waited] for (pid, start), waited in self.lock_waits.items()],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="statements per second, both kinds together")
    parser.add_argument("--sample-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    load = Load(args.url, args.rate, args.sample_ms, args.seed)
    signal.signal(signal.SIGTERM, lambda *_: load.request_stop())
    signal.signal(signal.SIGINT, lambda *_: load.request_stop())
    threading.Thread(target=lambda: (sys.stdin.read(), load.request_stop()), daemon=True).start()
    load.run()
    with open(args.out, "w") as out:
        json.dump(load.as_dict(), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
