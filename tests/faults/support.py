"""The fault-injection suite's toolbox: one test's own stack of real processes.

A `FaultStack` owns a fresh PostgreSQL database (migrated to head, with the touch
tables of tests/backfills_for_tests.py), its own redis-server on a free port, a
Celery client, and whatever `celery -A worker worker` and `celery -A worker beat`
subprocesses the test starts; `close()` stops them all. Every wait polls the
database or a log file: no fixed sleeps.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import make_url

from backend.backfill.model import Batch, BatchStatus, Run, RunStatus, Transition
from backend.backfill.state import backfill_batches
from backend.migrations.alembic_api import upgrade
from tests.backfill_helpers import create_touch_tables, insert_rows, make_service, touched
from tests.faults import backfills as fault_backfills
from tests.processes import ROOT, CeleryWorker, RedisServer, subprocess_env

MODULES = "tests.backfills_for_tests,tests.faults.backfills"
LEASE_SECONDS = 3.0
# Short leases so that recovery happens within seconds (docs/configuration.md).
FAST_ENV = {
    "BACKFILL_MODULES": MODULES,
    "BACKFILL_LEASE_SECONDS": "3",
    "BACKFILL_REDISPATCH_AFTER_SECONDS": "2",
    "BACKFILL_RECOVERY_INTERVAL": "1",
    "BACKFILL_RETRY_BACKOFF_SECONDS": "0.1",
    "BACKFILL_RETRY_BACKOFF_MAX_SECONDS": "0.5",
}
# The last statement of the slow test backfill's transaction before it sleeps.
SLOW_BATCH_QUERY = "%touch_poison%"


class FaultTimeout(AssertionError):
    pass


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05,
               diagnostics: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise FaultTimeout(f"timed out after {timeout:g}s waiting for {what}\n{diagnostics()}")
        time.sleep(interval)


# --- processes -----------------------------------------------------------------------

def group_pids(pgid: int) -> set[int]:
    """Live processes of a process group (a worker's main process and its pool)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.add(int(entry))
    return found


def pid_owning_local_port(port: int, candidates: Iterable[int]) -> int | None:
    """The process among `candidates` whose TCP socket has local port `port`: maps
    pg_stat_activity.client_port to the worker process using that connection."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    for pid in candidates:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    return None


def task_outcomes(worker: "Worker", task: str, outcome: str) -> int:
    """How many `worker.tasks.<task>` runs the worker logged as `outcome`
    (succeeded, retry, raised unexpected...)."""
    return sum(1 for line in worker.log().splitlines() if f"Task worker.tasks.{task}[" in line and outcome in line)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Worker(CeleryWorker):
    """`celery -A worker worker` in its own session (process group = its pid)."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1, production: bool = False):
        super().__init__(env, concurrency=concurrency, log_path=log_path)
        self.production = production

    def start(self) -> "Worker":
        """As tests.processes.CeleryWorker; `production`: as docker-compose.yml runs
        it, with gossip, mingle and heartbeat (the suite's other tests turn them off)."""
        if not self.production:
            return super().start()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO",
                 "--concurrency", str(self.concurrency), "-n", f"fault{os.getpid()}-{time.monotonic_ns()}@%h"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 45) -> "Worker":
        def ready():
            assert self.process.poll() is None, f"worker exited with {self.process.returncode}:\n{self.log()[-3000:]}"
            return " ready." in self.log()

        wait_until(ready, timeout, "the worker to be ready", interval=0.1, diagnostics=lambda: self.log()[-3000:])
        return self

    def pids(self) -> set[int]:
        return group_pids(self.pid)

    def pool_children(self) -> set[int]:
        return self.pids() - {self.pid}

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and pool at once."""
        _kill_group(self.pid, signal.SIGKILL)
        self.process.wait(10)
        wait_until(lambda: not self.pids(), 10, "the worker's processes to be gone")

    def stop(self) -> None:
        """Teardown: no grace needed, the test's checks are done."""
        if self.process is None:
            return
        _kill_group(self.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)


class Beat:
    """`celery -A worker beat` with its schedule file in the test's directory."""

    def __init__(self, env: dict[str, str], directory: Path):
        self.env, self.log_path, self.schedule = env, directory / "beat.log", directory / "beat-schedule"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Beat":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO",
                 "--schedule", str(self.schedule)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        _kill_group(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)


# --- the stack -----------------------------------------------------------------------

@dataclass(frozen=True)
class OpenTransaction:
    """A worker's database session caught inside a batch transaction."""

    backend_pid: int
    client_port: int
    state: str


class FaultStack:
    def __init__(self, url: str, directory: Path, *, worker_url: str | None = None):
        self.url = url
        self.worker_url = worker_url or url
        self.directory = directory
        self.database = make_url(url).database
        self.workers: list[Worker] = []
        self.beats: list[Beat] = []
        upgrade(url, "head")
        self.service = make_service(url)
        self.engine = self.service.engine
        create_touch_tables(self.engine)
        with self.engine.begin() as connection:
            for statement in fault_backfills.CREATE_TABLES:
                connection.exec_driver_sql(statement)
        self.redis = RedisServer().start()
        self.client = Celery("fault-client", broker=self.redis.url)
        self.clock_file = directory / "worker-clock-offset"

    def set_worker_time(self, moment) -> None:
        """From now on the workers' engine clock says `moment` (and runs on from it)."""
        fault_backfills.shift_clock(self.clock_file, moment)

    # processes
    def env(self, **extra: str) -> dict[str, str]:
        return subprocess_env(DATABASE_URL=self.worker_url, CELERY_BROKER_URL=self.redis.url,
                              **{fault_backfills.CLOCK_FILE_VARIABLE: str(self.clock_file), **FAST_ENV, **extra})

    def worker(self, concurrency: int = 1, wait: bool = True, production: bool = False) -> Worker:
        log = self.directory / f"worker-{len(self.workers) + 1}.log"
        worker = Worker(self.env(), log, concurrency=concurrency, production=production)
        self.workers.append(worker)
        worker.start()
        return worker.wait_ready() if wait else worker

    def beat(self) -> Beat:
        beat = Beat(self.env(), self.directory)
        self.beats.append(beat)
        return beat.start()

    def restart_redis_empty(self) -> None:
        """Kill redis-server and start a new, empty one on the same port."""
        port = self.redis.port
        self.redis.kill()
        self.redis = RedisServer(port).start()

    def logs(self) -> str:
        parts = [f"--- {w.log_path.name}\n{w.log()[-2500:]}" for w in self.workers]
        parts += [f"--- beat\n{b.log()[-1000:]}" for b in self.beats]
        return "\n".join(parts)

    def close(self) -> None:
        for process in [*self.beats, *self.workers]:
            try:
                process.stop()
            except Exception:  # keep cleaning up
                pass
        try:
            self.client.close()
        finally:
            self.redis.kill()
            self.engine.dispose()

    # dispatching through the broker, as worker.tasks.dispatch does
    def dispatch(self, batch_ids: Iterable[int]) -> None:
        for batch_id in batch_ids:
            self.client.send_task("worker.tasks.run_batch", args=[batch_id])

    def start_run(self, name: str, ids: list[int], *, outside: Iterable[int] = ()) -> int:
        """Rows `ids`, a run of `name` started on the workers (worker.tasks.start_run);
        once its bounds are fixed, rows `outside` them are added, which it must not touch."""
        insert_rows(self.engine, ids)
        run_id = self.service.schedule(name)
        self.client.send_task("worker.tasks.start_run", args=[run_id])
        self.wait_run(run_id, lambda run: run.status != RunStatus.PENDING, "the run to start", timeout=30)
        outside = list(outside)
        if outside:
            run = self.run(run_id)
            assert all(not int(run.key_min) <= i <= int(run.key_max) for i in outside)
            insert_rows(self.engine, outside)
        return run_id

    # reading the durable state
    def run(self, run_id: int) -> Run:
        return self.service.get_run(run_id)

    def batches(self, run_id: int) -> list[Batch]:
        with self.engine.connect() as connection:
            return [Batch.from_row(row) for row in connection.execute(
                sa.select(backfill_batches).where(backfill_batches.c.run_id == run_id).order_by(backfill_batches.c.seq)
            ).mappings()]

    def batch(self, batch_id: int) -> Batch:
        with self.engine.connect() as connection:
            return Batch.from_row(connection.execute(
                sa.select(backfill_batches).where(backfill_batches.c.id == batch_id)).mappings().one())

    def transitions(self, run_id: int) -> list[Transition]:
        return self.service.transitions(run_id)

    def touched(self) -> dict[int, int]:
        return touched(self.engine)

    def rows_of(self, batch: Batch) -> dict[int, int]:
        low = int(batch.key_after) if batch.key_after is not None else None
        high = int(batch.key_end)
        return {k: v for k, v in self.touched().items() if (low is None or k > low) and k <= high}

    def wait_run(self, run_id: int, condition: Callable[[Run], bool], what: str, timeout: float = 60) -> Run:
        return wait_until(lambda: (run := self.run(run_id)) and condition(run) and run, timeout, what,
                          interval=0.1, diagnostics=lambda: f"run: {self.run(run_id)}\n{self.logs()}")

    def wait_finished(self, run_id: int, timeout: float = 60) -> Run:
        return self.wait_run(run_id, lambda run: run.status in RunStatus.FINISHED, "the run to finish", timeout)

    def batch_claimed_by(self, run_id: int, pid: int) -> Batch:
        running = [b for b in self.batches(run_id)
                   if b.status == BatchStatus.RUNNING and f":{pid}:" in (b.claimed_by or "")]
        assert len(running) == 1, (pid, self.batches(run_id))
        return running[0]

    # the worker's database sessions
    def open_batch_transaction(self, owners: Callable[[], Iterable[int]], query_like: str = SLOW_BATCH_QUERY,
                               timeout: float = 30) -> tuple[OpenTransaction, int]:
        """Wait until a process among `owners()` has a session inside a batch
        transaction that has written (it holds a transaction id) and is running or
        sleeping in the batch; return that session and the owning process."""
        query = sa.text(
            "SELECT pid, client_port, state FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            " AND state IN ('idle in transaction', 'active') AND backend_xid IS NOT NULL AND query LIKE :q"
            " ORDER BY xact_start"
        )

        def find():
            with self.engine.connect() as connection:
                rows = connection.execute(query, {"db": self.database, "q": query_like}).all()
            candidates = set(owners()) if rows else set()
            for row in rows:
                owner = pid_owning_local_port(row.client_port, candidates)
                if owner is not None:
                    return OpenTransaction(row.pid, row.client_port, row.state), owner
            return None

        return wait_until(find, timeout, "a worker inside a batch transaction", interval=0.01,
                          diagnostics=self.logs)

    def freeze_inside_batch(self, owners: Callable[[], Iterable[int]], query_like: str = SLOW_BATCH_QUERY,
                            timeout: float = 30) -> tuple[OpenTransaction, int]:
        """Catch a worker process inside a batch transaction and SIGSTOP it there, so
        that the test's next step (kill, terminate, pause) happens while the
        transaction is certainly still open; the caller kills or SIGCONTs it. A
        process that committed before it was stopped is let go and another is caught."""
        deadline = time.monotonic() + timeout
        while True:
            open_tx, owner = self.open_batch_transaction(owners, query_like, max(deadline - time.monotonic(), 0.1))
            os.kill(owner, signal.SIGSTOP)
            if self.backend_in_transaction(open_tx.backend_pid):
                return open_tx, owner
            os.kill(owner, signal.SIGCONT)

    def backend_in_transaction(self, backend_pid: int) -> bool:
        with self.engine.connect() as connection:
            return bool(connection.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND backend_xid IS NOT NULL"
                " AND state IN ('idle in transaction', 'active')"), {"pid": backend_pid}).scalar())

    def backend_alive(self, backend_pid: int) -> bool:
        with self.engine.connect() as connection:
            return bool(connection.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}).scalar())

    def wait_backend_gone(self, backend_pid: int, timeout: float = 15) -> None:
        wait_until(lambda: not self.backend_alive(backend_pid), timeout,
                   f"PostgreSQL backend {backend_pid} to end (its transaction rolled back)")


# --- what every fault test checks afterwards ------------------------------------------

def assert_ranges_tile(run: Run, batches: list[Batch]) -> None:
    """The batches' key ranges cover [key_min, key_max] without gap or overlap."""
    ordered = sorted(batches, key=lambda b: int(b.key_end))
    assert ordered, "the run has no batch"
    assert ordered[0].key_after is None, ordered[0]
    for before, after in zip(ordered, ordered[1:]):
        assert after.key_after is not None and int(after.key_after) == int(before.key_end), \
            f"ranges overlap or leave a gap: {before} / {after}"
    assert int(ordered[-1].key_end) == int(run.key_max)


def assert_exactly_once(stack: FaultStack, run_id: int, ids: Iterable[int], outside: Iterable[int] = ()) -> Run:
    """Every row in range touched exactly once, rows outside untouched, and the run's
    own counters agreeing with the data and with its batches."""
    ids, outside = sorted(ids), sorted(outside)
    run = stack.run(run_id)
    assert run.status == RunStatus.COMPLETED, f"{run}\n{stack.logs()}"
    data = stack.touched()
    wrong = {i: data.get(i) for i in ids if data.get(i) != 1}
    assert not wrong, f"rows in range not touched exactly once: {wrong}"
    assert {i: data[i] for i in outside} == {i: 0 for i in outside}, "rows outside the run's bounds were touched"
    batches = stack.batches(run_id)
    assert {b.status for b in batches} == {BatchStatus.SUCCEEDED}, batches
    assert run.rows_done == len(ids) == sum(b.rows_affected for b in batches)
    assert run.rows_scanned == len(ids) == sum(b.rows_in_range for b in batches)
    assert run.batches_done == len(batches)
    assert run.batches_failed == 0
    assert_ranges_tile(run, batches)
    return run


def dump_database(engine: sa.Engine) -> dict[str, list]:
    """Every table of the public schema (name, columns, all rows sorted): compared
    before and after bad input to prove nothing changed."""
    dump: dict[str, list] = {}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for table in sorted(inspector.get_table_names()):
            columns = [c["name"] for c in inspector.get_columns(table)]
            rows = connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            dump[table] = [columns, sorted(repr(tuple(row)) for row in rows)]
        dump["-- sequences"] = sorted(connection.execute(sa.text(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")).all())
    return dump


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
