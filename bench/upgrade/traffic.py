"""The shop's traffic during the upgrade: single-row reads and writes of orders, users
and product_translations, one stream each on its own connection (autocommit).

Open loop, as in bench.load: every stream has a fixed schedule of slots; a statement
whose slot has passed (behind a blocked one) is sent as soon as the connection is
free, and its latency is counted from its slot, so the statements queued behind a
stall show it too (coordinated omission). Only columns present at revision 0002 are
used: the schema grows while the traffic runs.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import psycopg2

from bench.load import dsn
from bench.upgrade.attribution import OPERATIONS, TABLES, Statement

APPLICATION_NAME = "bench-upgrade-load"
DRAIN_SECONDS = 60.0
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")

SQL = {
    ("orders", "read"): "SELECT id, user_id, status, currency, updated_at FROM orders WHERE id = %s",
    ("orders", "write"): "UPDATE orders SET status = %s, updated_at = now() WHERE id = %s",
    ("users", "read"): "SELECT id, email, preferred_locale, updated_at FROM users WHERE id = %s",
    ("users", "write"): "UPDATE users SET updated_at = now() WHERE id = %s",
    ("product_translations", "read"):
        "SELECT id, product_id, locale, name, description FROM product_translations WHERE id = %s",
    ("product_translations", "write"): "UPDATE product_translations SET description = %s WHERE id = %s",
}


@dataclass(frozen=True)
class LoadError:
    at: float
    table: str
    operation: str
    message: str


def parameters(table: str, operation: str, rng: random.Random, ids: tuple[int, int]) -> tuple:
    row_id = rng.randint(*ids)
    if table == "orders" and operation == "write":
        return rng.choice(STATUSES), row_id
    if table == "product_translations" and operation == "write":
        return f"Updated by the shop during the upgrade ({rng.randint(1, 10**6)}).", row_id
    return (row_id,)


class ShopTraffic:
    """Six paced streams; `start()`, then `stop()` returns when they have drained."""

    def __init__(self, url: str, interval_s: float, ids: dict[str, tuple[int, int]], seed: int):
        self.url, self.interval_s, self.ids = url, interval_s, ids
        self.statements: list[Statement] = []
        self.errors: list[LoadError] = []
        self._stop = threading.Event()
        self._stop_at: float | None = None
        self._lock = threading.Lock()
        self._seeds = random.Random(seed)
        self._threads: list[threading.Thread] = []
        # One clock for every stream: slots in perf_counter, reported as wall time.
        self._wall0, self._perf0 = time.time(), time.perf_counter()

    def start(self) -> "ShopTraffic":
        streams = [(table, operation) for table in TABLES for operation in OPERATIONS]
        connections = [psycopg2.connect(dsn(self.url, APPLICATION_NAME)) for _ in streams]
        first = time.perf_counter() + 0.05
        for index, (stream, connection) in enumerate(zip(streams, connections)):
            connection.autocommit = True
            offset = self.interval_s * index / len(streams)  # spread the streams over one interval
            thread = threading.Thread(target=self._run, args=(*stream, connection, first + offset,
                                                              random.Random(self._seeds.random())),
                                      name=f"load-{stream[0]}-{stream[1]}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Slots due before now still run (bounded by DRAIN_SECONDS), then the streams end."""
        self._stop_at = time.perf_counter()
        self._stop.set()
        for thread in self._threads:
            thread.join(DRAIN_SECONDS + 10)

    def _wall(self, perf: float) -> float:
        return self._wall0 + (perf - self._perf0)

    def _run(self, table: str, operation: str, connection, slot: float, rng: random.Random) -> None:
        sql, ids = SQL[table, operation], self.ids[table]
        cursor = connection.cursor()
        try:
            while True:
                now = time.perf_counter()
                if self._stop.is_set():
                    if slot > self._stop_at or now - self._stop_at > DRAIN_SECONDS:
                        break
                elif now < slot:
                    self._stop.wait(slot - now)
                    continue
                sent = time.perf_counter()
                try:
                    cursor.execute(sql, parameters(table, operation, rng, ids))
                    if operation == "read":
                        cursor.fetchall()
                except psycopg2.Error as exc:
                    with self._lock:
                        self.errors.append(LoadError(self._wall(sent), table, operation, str(exc).strip()[:200]))
                    if connection.closed:
                        connection = psycopg2.connect(dsn(self.url, APPLICATION_NAME))
                        connection.autocommit = True
                        cursor = connection.cursor()
                else:
                    done = time.perf_counter()
                    with self._lock:
                        self.statements.append(Statement(table, operation, self._wall(slot),
                                                         (done - slot) * 1000, (done - sent) * 1000))
                slot += self.interval_s
        finally:
            connection.close()
