"""`python -m bench`: the orders_total_cents backfill done six ways on the same
PostgreSQL database and the same data, each under the same concurrent shop traffic.

    python -m bench                        # 1,000,000 orders, every method
    python -m bench --rows 100000 --scaling
    python -m bench --methods update,inprocess,celery1 --repeat 3
    python -m bench --smoke --output-dir /tmp/out   # a few thousand rows, correctness only (CI)
    python -m bench --per-row --rows 1000000        # the per-row suite: translation_slugs, 1M translations

Progress goes to stderr; the Markdown table to stdout and to
<output-dir>/<date>-<size>.md, with the raw numbers (.json) and a chart (.png).
Exit status 1 when a method's result is wrong (or a method failed).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import chart, database, perrow, report, targets
from bench.database import Dataset
from backend.migrations.safety.databases import drop_scratch_database
from bench.common import DEFAULT_SERVER_URL, ROOT, log, machine_info, output_stem, unused_stem
from bench.measure import (ALL_METHODS, PER_ROW_METHODS, SMOKE_BATCH_SIZE, SMOKE_ROWS, build_dataset, celery_concurrency,
                           measure_rounds, measure_scaling, suite)


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None,
                        help="orders to generate, or translations with --per-row (default 1,000,000; smoke 3,000)")
    parser.add_argument("--per-row", action="store_true",
                        help="the per-row suite: the translation_slugs backfill against a hand-written psycopg2 "
                             f"loop ({','.join(PER_ROW_METHODS)}); --rows counts translations")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated, from {','.join(ALL_METHODS)}, or with --per-row from "
                             f"{','.join(PER_ROW_METHODS)} (default: all of the suite's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per batch for ours (set on the run row) and per page/commit for the ORM and "
                             "OFFSET methods (default: the backfill's own, 2000; smoke 500)")
    parser.add_argument("--scaling", action="store_true",
                        help="also the scaling line at 100k and 1M rows: ours in-process, and the single UPDATE "
                             "beside it when it is among the methods")
    parser.add_argument("--scaling-10m", action="store_true", help="the scaling line up to 10M rows (implies --scaling)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each method N times, in rounds over all methods, and report its median run "
                             "(a shared machine's slow spells then fall on every method; default 1)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few thousand rows, every method, correctness only (for CI)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
                        help="a PostgreSQL server (any database on it) to create the scratch databases on "
                             f"(default $BENCH_DATABASE_URL or {DEFAULT_SERVER_URL})")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--load-rate", type=float, default=50.0, help="concurrent writes per second (default 50)")
    parser.add_argument("--sample-ms", type=float, default=10.0, help="lock-wait sampling interval (default 10 ms)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-database", action="store_true", help="do not drop the scratch database (debugging)")
    args = parser.parse_args(argv)
    known = PER_ROW_METHODS if args.per_row else ALL_METHODS
    args.methods = [m.strip() for m in (args.methods or ",".join(known)).split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in known]
    if unknown or not args.methods:
        parser.error(f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    args.methods = [m for m in known if m in args.methods]  # always in the order
    if args.rows is None:
        args.rows = SMOKE_ROWS if args.smoke else 1_000_000
    args.batch_size_is_default = args.batch_size is None or args.smoke
    if args.batch_size is None:
        args.batch_size = SMOKE_BATCH_SIZE if args.smoke else suite(args).default_batch_size()
    if args.rows < 1 or args.batch_size < 1 or args.repeat < 1:
        parser.error("--rows, --batch-size and --repeat must be at least 1")
    args.scaling = (args.scaling or args.scaling_10m) and not args.smoke and not args.per_row
    return args


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # so that the scratch databases, Redis and workers are cleaned up


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)  # also when started in the background (SIG_IGN there)
    started = time.perf_counter()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    options.output_dir.mkdir(parents=True, exist_ok=True)
    redis_server = None
    datasets: list[Dataset] = []
    results: list[dict] = []
    scaling: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        try:
            dataset = build_dataset(options.database_url, options.rows, options.seed, suite(options))
            datasets.append(dataset)
            machine = machine_info(options.database_url, dataset.url)
            if any(celery_concurrency(m) for m in options.methods):
                from tests.processes import RedisServer

                redis_server = RedisServer().start()
            results = list(measure_rounds(options.methods, dataset, options, workdir,
                                          redis_server and redis_server.url).values())
            if options.scaling:
                scaling = measure_scaling(options, results, datasets, workdir)
        finally:
            if redis_server:
                redis_server.kill()
            if not options.keep_database:
                for leftover in datasets:
                    drop_scratch_database(leftover.url)
            elif datasets:
                log("kept: " + ", ".join(d.url for d in datasets))

    reference = next((r for r in results if r["method"] == report.reference_method(options.per_row)), None)
    for r in results:
        r["ratio_to_update" if not options.per_row else "ratio_to_rowloop"] = \
            r["rows_per_s"] / reference["rows_per_s"] if reference else None
    full = {
        "date": date,
        "machine": machine,
        "config": {"rows": options.rows, "methods": options.methods, "batch_size": options.batch_size,
                   "load_rate": options.load_rate, "sample_ms": options.sample_ms, "seed": options.seed,
                   "smoke": options.smoke, "scaling": options.scaling, "repeat": options.repeat,
                   "per_row": options.per_row, "backfill": suite(options).BACKFILL,
                   "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)},
        "dataset": {"database": dataset.url.rsplit("/", 1)[-1], "orders": dataset.orders, "items": dataset.items,
                    **({"translations": dataset.translations, **perrow.dataset_shape(dataset.translations)}
                       if options.per_row else database.dataset_shape(dataset.orders)),
                    "generate_s": dataset.generate_s},
        "methods": results,
        "scaling": scaling,
        "targets": (targets.evaluate_per_row_targets(results) if options.per_row
                    else targets.evaluate_targets(results, scaling)),
        "total_s": time.perf_counter() - started,
    }
    table = report.markdown(full)
    stem = unused_stem(options.output_dir, output_stem(
        date, options.rows, options.smoke, None if options.batch_size_is_default else options.batch_size,
        options.per_row))
    stem.with_suffix(".md").write_text(table)
    report.write_json(full, stem.with_suffix(".json"))
    chart.chart(full, stem.with_suffix(".png"))
    print(table)
    log(f"done in {full['total_s']:.0f} s: {stem}.md, .json, .png")
    wrong = [r["method"] for r in results if not r["check"]["correct"]]
    wrong += [f"scaling {p['rows']}" for p in scaling if not p["correct"]]
    if wrong:
        log(f"WRONG RESULT: {', '.join(wrong)}")
        return 1
    return 0
