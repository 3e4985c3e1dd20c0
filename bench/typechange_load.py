"""What `python -m bench.typechange` runs beside the type change: three open-loop
streams on order_items (ItemTraffic) and the sampler timing the swap's ACCESS
EXCLUSIVE lock (LockSpan)."""
from __future__ import annotations

import random
import threading
import time

import psycopg2

from bench.load import dsn
from bench.upgrade.traffic import DRAIN_SECONDS

TABLE = "order_items"
APPLICATION_NAME = "bench-typechange-load"

STREAMS = {
    "read": "SELECT id, order_id, quantity, unit_price_cents FROM order_items WHERE id = %(id)s",
    "update": "UPDATE order_items SET unit_price_cents = unit_price_cents + 1 WHERE id = %(id)s",
    "insert": "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
              "VALUES (%(order)s, %(product)s, 1, 500)",
}


class ItemTraffic:
    """One open-loop stream per statement of STREAMS, every `interval_s`, each on its own connection."""

    def __init__(self, url: str, ids: dict[str, tuple[int, int]], interval_s: float):
        self.url, self.ids, self.interval_s = url, ids, interval_s
        self.latencies: list[tuple[float, str, float]] = []  # (slot, stream, ms from slot)
        self.errors: list[str] = []
        self._stop, self._lock, self._threads = threading.Event(), threading.Lock(), []

    def __enter__(self) -> "ItemTraffic":
        first = self.started = time.perf_counter() + 0.05
        for index, stream in enumerate(STREAMS):
            thread = threading.Thread(target=self._run, args=(stream, first + self.interval_s * index / 3),
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(DRAIN_SECONDS)

    def _run(self, stream: str, slot: float) -> None:
        rng = random.Random(stream)
        connection = psycopg2.connect(dsn(self.url, APPLICATION_NAME))
        connection.autocommit = True
        cursor = connection.cursor()
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                if now < slot:
                    self._stop.wait(slot - now)
                    continue
                params = {"id": rng.randint(*self.ids["order_items"]), "order": rng.randint(*self.ids["orders"]),
                          "product": rng.randint(*self.ids["products"])}
                try:
                    cursor.execute(STREAMS[stream], params)
                except psycopg2.Error as exc:
                    with self._lock:
                        self.errors.append(f"{stream}: {str(exc).strip()[:160]}")
                else:
                    with self._lock:
                        self.latencies.append((slot, stream, (time.perf_counter() - slot) * 1000))
                slot += self.interval_s
        finally:
            connection.close()

    def worst_overlapping(self, spans: list[tuple[float, float]]) -> tuple[float, str]:
        """The longest statement that was waiting while one of `spans` lasted."""
        with self._lock:
            hit = [(ms, stream) for slot, stream, ms in self.latencies
                   if any(slot <= end and slot + ms / 1000 >= start for start, end in spans)]
        return max(hit, default=(0.0, "-"))

    def worst_between(self, start: float, end: float) -> tuple[float, str]:
        with self._lock:
            inside = [(ms, stream) for slot, stream, ms in self.latencies if start <= slot <= end]
        return max(inside, default=(0.0, "-"))


class LockSpan:
    """Samples pg_locks every 2 ms: the span during which ACCESS EXCLUSIVE on the table is granted."""

    def __init__(self, url: str, table: str):
        self.url, self.table, self.spans = url, table, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "LockSpan":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def longest_ms(self) -> float:
        return max((end - start for start, end in self.spans), default=0.0) * 1000

    def _run(self) -> None:
        connection = psycopg2.connect(dsn(self.url, "bench-typechange-locks"))
        connection.autocommit = True
        cursor, held_since, last = connection.cursor(), None, None
        try:
            while not self._stop.is_set():
                cursor.execute("SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND granted "
                               "AND mode = 'AccessExclusiveLock'", (self.table,))
                now = time.perf_counter()
                if cursor.fetchone()[0]:
                    held_since, last = held_since or now, now
                elif held_since is not None:
                    self.spans.append((held_since, last))
                    held_since = None
                time.sleep(0.002)
        finally:
            connection.close()
