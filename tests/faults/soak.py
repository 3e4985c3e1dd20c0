"""The fault soak's injectors and its summary (tests/faults/test_soak.py).

Each fault is a function of a `Soak` that does one harmful thing to the stack and
returns what it did, or None when the moment did not allow it (no pool process
holding a batch, no open batch transaction). Whether the stack survived it is
judged by the caller the same way for every kind: the workers' main processes
alive and a batch claimed after the fault finishing in bounded time.
"""
from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from backend.backfill.clock import as_utc
from backend.backfill.model import Run, RunStatus
from backend.backfill.state import backfill_batches
from tests.faults.support import FaultStack, Worker, wait_until
from tests.processes import RedisServer

KINDS = ("pool_kill", "worker_kill", "redis_kill", "backend_terminate", "pause_resume")
WEIGHTS = (3, 2, 2, 2, 1)
DESCRIPTIONS = {
    "pool_kill": "a pool process SIGKILLed (one holding a batch when there is one)",
    "worker_kill": "a whole worker SIGKILLed (main process and pool), a new one started",
    "redis_kill": "Redis SIGKILLed, down 1-4 s, restarted empty on the same port",
    "backend_terminate": "pg_terminate_backend on a worker's session inside a batch transaction",
    "pause_resume": "the run paused for 1-4 s, then resumed",
}


@dataclass
class Tally:
    injected: Counter = field(default_factory=Counter)
    survived: Counter = field(default_factory=Counter)
    slowest: dict = field(default_factory=dict)  # kind -> slowest recovery in seconds
    failures: list = field(default_factory=list)

    def record(self, kind: str, recovered: float | None, problem: str | None) -> None:
        self.injected[kind] += 1
        if problem is None:
            self.survived[kind] += 1
            self.slowest[kind] = max(self.slowest.get(kind, 0.0), recovered or 0.0)
        else:
            self.failures.append(f"{kind}: {problem}")


class Soak:
    def __init__(self, stack: FaultStack, run_id: int, workers: list[Worker], rng: random.Random):
        self.stack, self.run_id, self.workers, self.rng = stack, run_id, workers, rng
        self.worker_restarts = 0

    def new_worker(self) -> Worker:
        return self.stack.worker(concurrency=2, production=True)

    # --- the faults ------------------------------------------------------------------
    def pool_kill(self) -> str | None:
        running = [b.claimed_by or "" for b in self.stack.batches(self.run_id) if b.status == "running"]
        children = [(w, c) for w in self.workers for c in w.pool_children()]
        busy = [(w, c) for w, c in children if any(f":{c}:" in claim for claim in running)]
        if not (busy or children):
            return None
        worker, child = self.rng.choice(busy or children)
        os.kill(child, signal.SIGKILL)
        return f"pool process {child} of worker {worker.pid}" + (" (holding a batch)" if busy else "")

    def worker_kill(self) -> str | None:
        index = self.rng.randrange(len(self.workers))
        victim = self.workers[index]
        victim.kill()
        self.workers[index] = self.new_worker()
        self.worker_restarts += 1
        return f"worker {victim.pid} killed, {self.workers[index].pid} started"

    def redis_kill(self) -> str | None:
        port, down = self.stack.redis.port, self.rng.uniform(1, 4)
        self.stack.redis.kill()
        time.sleep(down)
        self.stack.redis = RedisServer(port).start()
        return f"Redis down {down:.1f} s"

    def backend_terminate(self) -> str | None:
        query = sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            " AND backend_xid IS NOT NULL AND query LIKE '%touch_poison%'")

        def in_batch():
            with self.stack.engine.connect() as connection:
                return connection.execute(query, {"db": self.stack.database}).scalars().first()

        try:
            pid = wait_until(in_batch, 10, "a session inside a batch transaction", interval=0.02)
        except AssertionError:
            return None
        with self.stack.engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return f"backend {pid} terminated"

    def pause_resume(self) -> str | None:
        if self.stack.run(self.run_id).status != RunStatus.RUNNING:
            return None
        service, held = self.stack.service, self.rng.uniform(1, 4)
        service.pause(self.run_id, actor="soak", reason="soak: pause and resume")
        time.sleep(held)
        service.resume(self.run_id, actor="soak", dispatch=self.stack.dispatch)
        return f"paused {held:.1f} s"

    # --- judging -----------------------------------------------------------------------
    def next_batch_after(self, moment: datetime) -> datetime | None:
        """When the first batch claimed after `moment` finished (None: none yet)."""
        b = backfill_batches
        with self.stack.engine.connect() as connection:
            value = connection.execute(
                sa.select(sa.func.min(b.c.finished_at)).where(
                    b.c.run_id == self.run_id, b.c.status == "succeeded", b.c.started_at > moment)
            ).scalar()
        return as_utc(value)

    def recovery(self, after: datetime, timeout: float) -> tuple[float | None, str | None]:
        """(seconds to the next batch, None) or (None, what went wrong)."""
        def settled():
            if self.stack.run(self.run_id).status == RunStatus.COMPLETED:
                return datetime.now(timezone.utc)
            return self.next_batch_after(after)

        try:
            finished = wait_until(settled, timeout, "a batch claimed after the fault to finish", interval=0.1)
        except AssertionError as exc:
            return None, str(exc).splitlines()[0]
        dead = [w.pid for w in self.workers if not w.alive()]
        if dead:
            return None, f"worker main process(es) {dead} died"
        return max((finished - after).total_seconds(), 0.0), None


def summary(*, tally: Tally, minutes: float, seed: int, fault_seconds: float, total_seconds: float,
            rows: int, run: Run, worker_restarts: int, outcome: str, commit: str) -> str:
    lines = [
        "# Fault soak: last run",
        "",
        f"`python -m pytest tests/faults/test_soak.py -m soak --soak-minutes {minutes:g} --soak-seed {seed}`",
        "",
        f"- when: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}",
        "- stack: PostgreSQL 15, redis-server, 2 workers x concurrency 2 (gossip, mingle, heartbeat on, as "
        "docker-compose.yml runs them) and beat; backfill `test_touch_slow` (batches of 5 rows, 0.3 s asleep "
        "in each transaction, 2 at once); a shared 2-core machine",
        f"- faults for {fault_seconds / 60:.1f} min (asked {minutes:g}), one at a time, 2-8 s apart, each "
        "followed by the wait for a batch claimed after it to finish",
        f"- run time {total_seconds / 60:.1f} min; rows {rows:,}; run {run.status}, "
        f"{run.batches_done:,} batches; worker restarts {worker_restarts}",
        f"- outcome: {outcome}",
        "",
        "| fault | injected | survived | slowest recovery (s) |",
        "|---|---:|---:|---:|",
    ]
    for kind in KINDS:
        slowest = tally.slowest.get(kind)
        lines.append(f"| {DESCRIPTIONS[kind]} | {tally.injected[kind]} | {tally.survived[kind]} | "
                     f"{'-' if slowest is None else f'{slowest:.1f}'} |")
    lines.append(f"| **all** | **{sum(tally.injected.values())}** | **{sum(tally.survived.values())}** | "
                 f"{max(tally.slowest.values(), default=0):.1f} |")
    lines += ["", "Recovery: from the end of the fault to the end of the first batch claimed after it.",
              "Survived: that batch finished within the bound, and every worker's main process was alive."]
    if tally.failures:
        lines += ["", "Not survived:", *[f"- {failure}" for failure in tally.failures]]
    return "\n".join(lines) + "\n"
