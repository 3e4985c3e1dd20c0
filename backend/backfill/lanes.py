"""Lanes: the in-process executor's batches, up to `max_parallel` of them at once.

Each lane is a thread running one batch at a time through `service.execute`, on a
connection of the service's pool, as one Celery worker would. The lanes share a
queue of batch ids: a lane that finds it empty asks for more (carving under the run's
row lock, `service.advance`, else the run's pending batches), one lane at a time.
Batches are claimed with a claim token in runner.execute_batch, and an id is queued
only once per process, so two lanes never run the same batch.

Threads, not processes. Measured on this 2-core machine with PostgreSQL on it (and
another benchmark loading it: load average 4), one round-robin of 2 rounds, wall
time of the whole run, max_parallel 4 (processes: 2 forked children, each its own
engine, carving with `advance`):

    orders_total_cents, 300k orders   1 lane 13.1 / 12.1 s   2 threads 9.3 / 6.2 s    2 processes 7.7 / 10.4 s
    a per-row RowBackfill, 200k rows  1 lane 102 / 113 s     2 threads 89 / 97 s      2 processes 108 / 130 s

A batch mostly waits for PostgreSQL (psycopg2 releases the GIL, and the database is
where the cores go), so threads do as well as processes for set-based backfills and
better for the per-row one (measured when it still wrote one UPDATE per row, before
backend.backfill.bulk; not measured since); threads need no fork, no second engine or catalog import, and keep one
process's signal handling and lease.

After each batch a lane follows `next_step` (outcome.py): it runs the batch again after the
delay (AGAIN), goes on to its next batch (NEXT), and otherwise ends (SPLIT,
LOOK_AT_RUN, WAIT, STOP), as it does when there is nothing to run now; the driver
looks at the run again once every lane has ended (and the next lanes hand out the
halves of a split batch). `stop()` (Ctrl-C, SIGTERM, an error in a lane)
lets each lane finish the batch it is in: that batch commits or rolls back with its
done record, so every row is processed exactly once.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from backend.backfill.outcome import Step, next_step
from backend.backfill.service import BackfillService


class Lanes:
    """One session of `count` lanes over a run; `run()` returns when all have ended."""

    def __init__(self, service: BackfillService, run_id: int, lease, count: int, *,
                 sleep: Callable[[float], None] = time.sleep, tick: Callable[[], None] = lambda: None,
                 tick_seconds: float = 0.5):
        self.service, self.run_id, self.lease, self.count = service, run_id, lease, count
        self.tick, self.tick_seconds = tick, tick_seconds
        self.stopping = threading.Event()
        # A real sleep wakes up at stop(); an injected one (tests' clocks) is used as is.
        self.nap = self.stopping.wait if sleep is time.sleep else sleep
        self._lock = threading.Lock()  # the queue, and one refill at a time
        self._queue: deque[int] = deque()
        self._owned: set[int] = set()  # queued or in a lane: never queued twice
        self._errors: list[BaseException] = []
        self.handed_out = 0

    def run(self) -> bool:
        """Run the lanes until each has ended; True when some batch was run. Interrupted
        (KeyboardInterrupt, SystemExit), the lanes finish their batch first."""
        threads = [threading.Thread(target=self._lane, name=f"backfill-lane-{i + 1}", daemon=True)
                   for i in range(self.count)]
        try:
            for thread in threads:  # inside the try: a Ctrl-C between two starts stops the first lane too
                thread.start()
            self._wait_for(threads)
        except BaseException:
            self.stop()
            for thread in threads:  # a second Ctrl-C leaves the rollback to PostgreSQL
                if thread.ident is not None:
                    thread.join()
            raise
        if self._errors:
            raise self._errors[0]
        return self.handed_out > 0

    def stop(self) -> None:
        self.stopping.set()

    def _wait_for(self, threads: list[threading.Thread]) -> None:
        """The driver's side: progress every tick while the lanes work."""
        for thread in threads:
            while thread.is_alive():
                thread.join(self.tick_seconds)
                if thread.is_alive():
                    self.tick()

    def _lane(self) -> None:
        try:
            while not self.stopping.is_set():
                batch_id = self._next_batch()
                if batch_id is None:
                    return
                try:
                    go_on = self._run_batch(batch_id)
                finally:
                    with self._lock:
                        self._owned.discard(batch_id)
                if not go_on:
                    return
        except BaseException as exc:  # handed to the driver, which raises it
            self._errors.append(exc)
            self.stop()

    def _next_batch(self) -> int | None:
        """The next queued batch, asking for more when the queue is empty."""
        with self._lock:
            if not self._queue:
                fresh = self.service.advance(self.run_id) or self.service.batches_to_run(self.run_id)
                fresh = [batch_id for batch_id in fresh if batch_id not in self._owned]
                self._queue.extend(fresh)
                self._owned.update(fresh)
            if not self._queue:
                return None
            self.handed_out += 1
            return self._queue.popleft()

    def _run_batch(self, batch_id: int) -> bool:
        """One batch, run again while its next step says so; False: end this lane."""
        step = next_step(self.service.execute(batch_id))
        while step.kind is Step.AGAIN:
            if self.stopping.is_set():
                return False  # it is pending (retry) or someone else's (leased): left as it is
            self.nap(step.delay)
            if not self.lease.hold():
                return False
            step = next_step(self.service.execute(batch_id))
        if step.kind is not Step.NEXT:
            return False  # the driver looks at the run
        if not self.lease.hold():
            return False  # another process drives the run now
        pause = self.service.policy(self.run_id).pause_seconds
        if pause and not self.stopping.is_set():
            self.nap(pause)  # throttle: leave the database room between this lane's batches
        return True
