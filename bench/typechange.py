"""`python -m bench.typechange`: order_items.unit_price_cents from integer to bigint with
backend.migrations.type_change, while the shop reads, updates and inserts order items.

    python -m bench.typechange --orders 100000 --orders 300000

For each size, on a scratch database built like bench.upgrade's (schema 0002, the
generated shop, vacuumed): the trigger's write overhead (closed-loop single-row
INSERTs into order_items without, then with the sync trigger), then the three steps
(start, the copy run in-process, finish, cleanup) under an open-loop load of three
streams on order_items (read, update, insert by id; latency counted from each
statement's slot, so statements queued behind a blocked one show the stall too).
The swap's lock time is the span during which a sampler (every 2 ms) sees the
ACCESS EXCLUSIVE lock on order_items granted. Markdown to stdout and to
bench/results/<date>-typechange-<sizes>.md.
"""
from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext

from backend.backfill.inprocess import run_in_process
from backend.backfill.registry import load_catalog
from backend.backfill.runs import latest_run
from backend.backfill.service import BackfillService
from backend.backfill.settings import EngineSettings
from backend.db import create_db_engine
from backend.migrations import alembic_api
from backend.migrations.safety.databases import drop_scratch_database
from backend.migrations.type_change import cleanup_type_change, finish_type_change, start_type_change
from bench.typechange_load import APPLICATION_NAME, STREAMS, TABLE, ItemTraffic, LockSpan
from bench.common import DEFAULT_SERVER_URL, ROOT, create_bench_database, log, unused_stem
from bench.load import dsn
from bench.report import percentile
from bench.upgrade import shop as shop_module
from bench.upgrade.cli import positive_int

COLUMN = "unit_price_cents"
BACKFILL = f"type_change:{TABLE}.{COLUMN}"
TRIGGER = f"type_change_{TABLE}_{COLUMN}"
OVERHEAD_ROUNDS = 5
BASELINE_SECONDS = 5.0
SINGLE_ROWS = 2_000
BULK_ROWS = 50_000

@contextlib.contextmanager
def revision(url: str):
    """Alembic's `op` as in a revision, under the migrations' lock_timeout (no retries:
    a timeout is reported as a failure of the run)."""
    config = alembic_api.alembic_config(url)
    engine = create_db_engine(url)
    try:
        with EnvironmentContext(config, alembic_api.script_directory()), engine.connect() as connection:
            connection.exec_driver_sql("SET lock_timeout = '2s'")
            connection.commit()
            context = MigrationContext.configure(connection, opts={"transaction_per_migration": True})
            with Operations.context(context):
                with context.begin_transaction(_per_migration=True):
                    yield
                if connection.in_transaction():
                    connection.commit()
    finally:
        engine.dispose()


def trigger_overhead(url: str, ids: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Per-row cost of INSERTs into order_items without and with the sync trigger, in
    alternating rounds (the machine's noise hits both alike): SINGLE_ROWS single-row
    INSERTs in one transaction, and one INSERT ... SELECT of BULK_ROWS rows, each rolled
    back (no commit's fsync in the figure, and the table does not grow). The trigger is
    switched off for a round with ALTER TABLE ... DISABLE TRIGGER (an instant lock); this
    runs before the copy, which then fills what the load wrote meanwhile."""
    rng = random.Random(7)
    connection = psycopg2.connect(dsn(url, APPLICATION_NAME))
    cursor = connection.cursor()
    samples: dict[str, list[float]] = {"single_without": [], "single_with": [], "bulk_without": [], "bulk_with": []}
    try:
        for _ in range(OVERHEAD_ROUNDS):
            for state in ("without", "with"):
                cursor.execute(f"ALTER TABLE {TABLE} {'DISABLE' if state == 'without' else 'ENABLE'} "
                               f"TRIGGER {TRIGGER}")
                connection.commit()
                sent = time.perf_counter()
                for _ in range(SINGLE_ROWS):
                    cursor.execute(STREAMS["insert"], {"order": rng.randint(*ids["orders"]),
                                                       "product": rng.randint(*ids["products"])})
                samples[f"single_{state}"].append((time.perf_counter() - sent) * 1e6 / SINGLE_ROWS)
                connection.rollback()
                sent = time.perf_counter()
                cursor.execute("INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
                               "SELECT %s, %s, 1, g FROM generate_series(1, %s) g",
                               (ids["orders"][0], ids["products"][0], BULK_ROWS))
                samples[f"bulk_{state}"].append((time.perf_counter() - sent) * 1e6 / BULK_ROWS)
                connection.rollback()
    finally:
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")
        connection.commit()
        connection.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def run_copy(url: str) -> float:
    service = BackfillService(create_db_engine(url), load_catalog(), EngineSettings())
    try:
        with service.engine.connect() as connection:
            run_id = latest_run(connection, BACKFILL).id
        started = time.perf_counter()
        status = run_in_process(service, run_id).status
        if status != "completed":
            raise SystemExit(f"error: the copy ended {status}")
        return time.perf_counter() - started
    finally:
        service.engine.dispose()


def measure(server_url: str, orders: int, interval_s: float) -> dict:
    url = create_bench_database(server_url, "bench_typechange")
    try:
        return _measure(url, orders, interval_s)
    finally:
        drop_scratch_database(url)


def _measure(url: str, orders: int, interval_s: float) -> dict:
    log(f"{orders:,} orders: generating into {url.rsplit('/', 1)[-1]}")
    shop = shop_module.build(url, orders, seed=1)
    ids = dict(shop.ids)
    engine = create_db_engine(url)
    with engine.connect() as connection:
        for table in ("order_items", "products"):
            ids[table] = tuple(connection.execute(sa.text(f"SELECT min(id), max(id) FROM {table}")).one())
    engine.dispose()

    result = {"orders": orders, "items": shop.items}
    with ItemTraffic(url, ids, interval_s) as traffic:
        steps = {}
        time.sleep(BASELINE_SECONDS)  # the load alone: the machine's own noise
        steps["baseline"] = (traffic.started, time.perf_counter())
        for name, step in (("start", lambda: start_type_change(TABLE, COLUMN, sa.BigInteger(), revision="bench")),):
            began = time.perf_counter()
            with revision(url):
                step()
            steps[name] = (began, time.perf_counter())
        log("the trigger's cost per inserted row")
        result["overhead_us"] = trigger_overhead(url, ids)
        log("copy")
        began = time.perf_counter()
        run_copy(url)
        steps["copy"] = (began, time.perf_counter())
        log("finish (swap)")
        with LockSpan(url, TABLE) as locks:
            began = time.perf_counter()
            with revision(url):
                finish_type_change(TABLE, COLUMN, old_type=sa.Integer(), new_type=sa.BigInteger(), revision="bench")
            steps["finish"] = (began, time.perf_counter())
            time.sleep(0.1)
        result["swap_lock_ms"] = locks.longest_ms()
        result["lock_spans"] = len(locks.spans)
        result["worst_under_lock"] = traffic.worst_overlapping(locks.spans)
        began = time.perf_counter()
        with revision(url):
            cleanup_type_change(TABLE, COLUMN)
        steps["cleanup"] = (began, time.perf_counter())
        time.sleep(interval_s * 3)
    result["steps"] = {name: end - start for name, (start, end) in steps.items()}
    result["worst"] = {name: traffic.worst_between(start, end) for name, (start, end) in steps.items()}
    result["p99_ms"] = percentile([ms for _, _, ms in traffic.latencies], 99)
    result["statements"], result["errors"] = len(traffic.latencies), traffic.errors
    engine = create_db_engine(url)
    with engine.connect() as connection:
        result["final_type"] = connection.execute(sa.text(
            "SELECT data_type FROM information_schema.columns WHERE table_name = :t AND column_name = :c"),
            {"t": TABLE, "c": COLUMN}).scalar_one()
    engine.dispose()
    return result


def held(ms: float) -> str:
    """A span seen by one sample only is shorter than the sampler's period."""
    return f"{ms:.0f} ms" if ms >= 1 else "< 2 ms (one sample)"


def markdown(results: list[dict], interval_s: float) -> str:
    steps = ("baseline", "start", "copy", "finish", "cleanup")
    lines = [f"# Type change: {TABLE}.{COLUMN} integer -> bigint under load", "",
             f"`python -m bench.typechange {' '.join(sys.argv[1:])}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} "
             f"UTC, on a machine shared with other jobs (2 cores). Load: three open-loop streams on order_items "
             f"(read by id, update of the column by id, insert), one statement each per {interval_s * 1000:.0f} ms; "
             f"a statement's latency counts from its slot, so those queued behind a blocked one show the stall "
             f"too. The copy runs in-process with the engine's defaults.", "",
             "## Time and the longest blocked shop statement, per step", "",
             "| orders | items | " + " | ".join(steps) + " | total | swap lock (ACCESS EXCLUSIVE held) | longest statement waiting while it was held | p99, all steps | errors |",
             "|---:|---:|" + "---:|" * (len(steps) + 5)]
    for r in results:
        cells = [f"{r['steps'][name]:.2f} s, worst {r['worst'][name][0]:.0f} ms ({r['worst'][name][1]})" for name in steps]
        lines.append(f"| {r['orders']:,} | {r['items']:,} | " + " | ".join(cells) +
                     f" | {sum(v for k, v in r['steps'].items() if k != 'baseline'):.1f} s | {held(r['swap_lock_ms'])} "
                     f"(longest of {r['lock_spans']}) | {r['worst_under_lock'][0]:.0f} ms ({r['worst_under_lock'][1]}) | "
                     f"{r['p99_ms']:.1f} ms | "
                     f"{len(r['errors'])} |")
    lines += ["", "baseline: the load alone for 5 s before the start (the machine's own noise). "
              "Swap lock: the longest span a 2 ms sampler saw ACCESS EXCLUSIVE granted on order_items during "
              "finish (the NOT VALID checks' ADD CONSTRAINT is one more, shorter span); the next column is the "
              "longest shop statement that was waiting during one of those spans. "
              "`finish` includes the gate, the NOT NULL and CHECK copies validated while the shop writes, the swap "
              "and the validation of foreign keys (none on this column). The worst statement in `copy` waited "
              "for a batch's row locks (the batch is aimed at 100 ms).", "",
              "## The sync trigger's cost per inserted row", "",
              f"Median of {OVERHEAD_ROUNDS} alternating rounds, each rolled back, under the same load.", "",
              f"| orders | {SINGLE_ROWS:,} single-row INSERTs in one transaction: without / with | overhead | "
              f"INSERT ... SELECT of {BULK_ROWS:,} rows: without / with | overhead |",
              "|---:|---:|---:|---:|---:|"]
    for r in results:
        o = r["overhead_us"]
        lines.append(f"| {r['orders']:,} | {o['single_without']:.1f} / {o['single_with']:.1f} µs per row | "
                     f"x{o['single_with'] / o['single_without']:.2f} | {o['bulk_without']:.1f} / {o['bulk_with']:.1f} "
                     f"µs per row | x{o['bulk_with'] / o['bulk_without']:.2f} |")
    lines += ["", "The column ends as: " + ", ".join(f"{r['orders']:,} orders: {r['final_type']}" for r in results)]
    for r in results:
        for error in r["errors"][:5]:
            lines.append(f"- {r['orders']:,} orders, error: {error}")
    return "\n".join(lines) + "\n"


def size_label(orders: int) -> str:
    """100k, 1m: the sizes in the results' file name."""
    if orders % 1_000_000 == 0:
        return f"{orders // 1_000_000}m"
    return f"{orders // 1000}k" if orders >= 1000 else str(orders)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.typechange", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=positive_int, action="append", help="size (repeatable; default 100000)")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--interval-ms", type=positive_int, default=10)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args(argv)
    sizes = options.orders or [100_000]
    results = [measure(options.server_url, orders, options.interval_ms / 1000) for orders in sizes]
    text = markdown(results, options.interval_ms / 1000)
    print(text, end="")
    stem = f"{datetime.now(timezone.utc):%Y-%m-%d}-typechange-" + "-".join(size_label(n) for n in sizes)
    path = unused_stem(options.output_dir, stem).with_suffix(".md")
    path.write_text(text)
    log(f"wrote {path}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
