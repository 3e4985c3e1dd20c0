"""`python -m bench.statements`: where a backfill run's time goes, statement by statement.

    python -m bench.statements                       # 1,000,000 orders, ours in-process
    python -m bench.statements --executor worker     # batches run as a Celery worker runs them
    python -m bench.statements --rows 100000 --top 10

Builds a scratch database as `python -m bench` does (no concurrent load: this is a
profile, not a measurement of the shop's latency), runs the orders_total_cents run with
every SQL statement timed through SQLAlchemy's cursor events and every COMMIT and
connection ping timed too, and prints a Markdown table: each statement's count, total
and mean time, then what is left of the wall time (the engine's Python).

`--executor worker` runs each batch with `execute(batch, advance=True)` and hands out
the batches it carves, as `worker.tasks.run_batch` does, without the broker: the
difference to a real Celery run is the broker and the hand-off between processes.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import event

from backend.backfill.registry import load_catalog
from backend.backfill.inprocess import run_in_process
from backend.backfill.model import RunStatus
from backend.backfill.outcome import Step, next_step
from backend.backfill.service import BackfillService
from backend.db import create_db_engine
from backend.migrations.safety.databases import drop_scratch_database
from bench import database
from bench.common import DEFAULT_SERVER_URL, create_bench_database

EXECUTORS = ("inprocess", "worker")
STATEMENT_LABEL_LENGTH = 90


@dataclass
class Timing:
    count: int = 0
    seconds: float = 0.0


@dataclass
class StatementTimer:
    """Times every statement an Engine executes (grouped by its text, parameters aside),
    and the dialect's COMMITs and pings, which run outside the cursor events."""

    timings: dict[str, Timing] = field(default_factory=lambda: collections.defaultdict(Timing))

    def attach(self, engine: sa.Engine) -> "StatementTimer":
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        dialect = engine.dialect
        dialect.do_commit = self._timed("COMMIT", dialect.do_commit)
        dialect.do_ping = self._timed("(connection ping)", dialect.do_ping)
        return self

    def _before(self, connection, _cursor, _statement, _parameters, _context, _executemany) -> None:
        connection.info["bench_statement_started"] = time.perf_counter()

    def _after(self, connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        self.add(label(statement), time.perf_counter() - connection.info.pop("bench_statement_started"))

    def _timed(self, name: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)
        return timed

    def add(self, name: str, seconds: float) -> None:
        timing = self.timings[name]
        timing.count += 1
        timing.seconds += seconds

    @property
    def total_seconds(self) -> float:
        return sum(t.seconds for t in self.timings.values())


def label(statement: str) -> str:
    """One line, cut: enough to tell the engine's statements apart."""
    text = " ".join(statement.split())
    return text if len(text) <= STATEMENT_LABEL_LENGTH else text[:STATEMENT_LABEL_LENGTH - 3] + "..."


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def run_as_worker(service, run_id: int) -> None:
    """What worker.tasks.run_batch does for each batch, minus the broker. A profile
    follows only the path of a run without trouble: any step but NEXT stops it."""
    service.start(run_id, executor="celery")
    queue = collections.deque(service.batches_to_run(run_id) + service.advance(run_id))
    while queue:
        outcome = service.execute(queue.popleft(), advance=True)
        step = next_step(outcome)
        if step.kind is not Step.NEXT:
            raise RuntimeError(f"batch {outcome.batch_id}: {outcome.kind} ({outcome.error})")
        queue.extend(step.batch_ids if step.batch_ids is not None else service.advance(run_id))


def profile(dataset: database.Dataset, executor: str, batch_size: int) -> dict:
    """Reset the dataset, run the backfill under the timer; the numbers as a dict."""
    run_id = database.reset(dataset, batch_size)
    engine = create_db_engine(dataset.url)
    try:
        service = BackfillService(engine, load_catalog())
        with engine.connect() as connection:  # connected before the clock, as in the benchmark
            connection.execute(sa.text("SELECT 1"))
        timer = StatementTimer().attach(engine)
        started = time.perf_counter()
        (run_as_worker if executor == "worker" else run_in_process)(service, run_id)
        wall = time.perf_counter() - started
        run = service.get_run(run_id)
    finally:
        engine.dispose()
    return {"executor": executor, "wall_s": wall, "run": run, "timings": dict(timer.timings),
            "statements_s": timer.total_seconds}


def markdown(result: dict, top: int) -> str:
    run, wall = result["run"], result["wall_s"]
    batches = max(run.batches_done, 1)
    rest = wall - result["statements_s"]
    lines = [
        f"{result['executor']}: run {run.status}, {run.rows_done:,} rows in {run.batches_done} batches, "
        f"{wall:.2f} s; in statements, COMMITs and pings {result['statements_s']:.2f} s, the rest (Python) {rest:.2f} s "
        f"({rest / batches * 1000:.1f} ms a batch)",
        "",
        "| statement | count | total (ms) | each (ms) | per batch (ms) | of the wall time |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ranked = sorted(result["timings"].items(), key=lambda item: -item[1].seconds)
    for name, timing in ranked[:top]:
        lines.append(f"| {_cell(name)} | {timing.count} | {timing.seconds * 1000:,.1f} | "
                     f"{timing.seconds / timing.count * 1000:.2f} | {timing.seconds / batches * 1000:.2f} | "
                     f"{timing.seconds / wall:.1%} |")
    if len(ranked) > top:
        others = ranked[top:]
        seconds = sum(t.seconds for _, t in others)
        lines.append(f"| {len(others)} other statements | {sum(t.count for _, t in others)} | "
                     f"{seconds * 1000:,.1f} | | {seconds / batches * 1000:.2f} | {seconds / wall:.1%} |")
    lines.append(f"| (Python: the rest of the wall time) | | {rest * 1000:,.1f} | | "
                 f"{rest / batches * 1000:.2f} | {rest / wall:.1%} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders to generate (default 1,000,000)")
    parser.add_argument("--executor", choices=EXECUTORS, default="inprocess",
                        help="inprocess (run_in_process) or worker (as a Celery worker runs batches; no broker)")
    parser.add_argument("--batch-size", type=int, default=None, help="the run's starting batch size "
                        "(default: the backfill's own)")
    parser.add_argument("--top", type=int, default=25, help="statements listed, the slowest first (default 25)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
                        help=f"the PostgreSQL server for the scratch database (default {DEFAULT_SERVER_URL})")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.top < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--rows, --batch-size and --top must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.batch_size is None:
        options.batch_size = database.default_batch_size()
    url = create_bench_database(options.database_url)
    try:
        dataset = database.prepare(url, options.rows, options.seed)
        print(f"database: {dataset.orders:,} orders, {dataset.items:,} items", file=sys.stderr, flush=True)
        result = profile(dataset, options.executor, options.batch_size)
    finally:
        drop_scratch_database(url)
    print(markdown(result, options.top), end="")
    return 0 if result["run"].status == RunStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
