"""`python -m bench.upgrade`: the shop upgraded from 0002_backfill_state to head with
`run_migrations.py --batched` (in-process) while it serves reads and writes; how long
its statements stall, per revision and per backfill.

    python -m bench.upgrade --orders 100000
    python -m bench.upgrade --orders 30000 --orders 300000   # one section per size

Progress goes to stderr; the Markdown to stdout and to
<output-dir>/<date>-upgrade-<sizes>.md, with the numbers in a .json beside it.
Exit status 1 when an upgrade failed (or on bad input, with one line on stderr).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.common import DEFAULT_SERVER_URL, ROOT, create_bench_database, log, machine_info, unused_stem
from bench.upgrade import migration as migration_module
from bench.upgrade import report, shop as shop_module
from bench.upgrade.attribution import OPERATIONS, TABLES, attribute
from bench.upgrade.migration import Migration
from bench.upgrade.sampler import Sampler
from bench.upgrade.timeline import applied_times, build_segments, commit_times
from bench.upgrade.traffic import ShopTraffic

DEFAULT_ORDERS = 100_000
BASELINE_SECONDS = 2.0  # traffic alone before the upgrade starts: the reference row
SETTLE_SECONDS = 0.5  # traffic after the child exits, so that its last statements are due inside the run
MIGRATION_TIMEOUT_S = 3 * 3600


class OneLineParser(argparse.ArgumentParser):
    """Bad input is one line on stderr and exit status 1, like an unreachable server."""

    def error(self, message: str) -> None:
        self.exit(1, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def parse_args(argv: list[str] | None):
    parser = OneLineParser(prog="python -m bench.upgrade", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=positive_int, action="append", metavar="N",
                        help=f"shop size in orders, repeatable (default {DEFAULT_ORDERS:,}); users = orders / 3, "
                             "products = orders / 10 with one translation per locale")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
                        help="a PostgreSQL server (any database on it) to create the scratch databases on "
                             f"(default $BENCH_DATABASE_URL or {DEFAULT_SERVER_URL})")
    parser.add_argument("--load-interval-ms", type=positive_float, default=20.0,
                        help="each of the six traffic streams sends one statement every this often (default 20)")
    parser.add_argument("--sample-ms", type=positive_float, default=10.0,
                        help="pg_stat_activity / pg_locks / alembic_version sampling interval (default 10)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-database", action="store_true", help="do not drop the scratch databases (debugging)")
    args = parser.parse_args(argv)
    args.orders = args.orders or [DEFAULT_ORDERS]
    return args


def revisions_after_foundation() -> list[str]:
    """The revisions the upgrade applies, oldest first: whatever alembic/versions holds."""
    from backend.migrations.alembic_api import script_directory
    from backend.migrations.upgrade import pending_revisions

    return [revision.id for revision in pending_revisions(script_directory(), (shop_module.FOUNDATION,))]


def measure(url: str, orders: int, options) -> dict:
    """One size: build the shop, run the upgrade under traffic, attribute."""
    shop = shop_module.build(url, orders, options.seed)
    log(f"{orders:,} orders: shop generated in {shop.generate_s:.1f} s ({shop.users:,} users, "
        f"{shop.products:,} products, {shop.translations:,} translations, {shop.items:,} items)")
    revisions = revisions_after_foundation()
    sampler = Sampler(url, options.sample_ms / 1000).start()
    traffic = ShopTraffic(url, options.load_interval_ms / 1000, shop.ids, options.seed).start()
    child = Migration(url, ROOT)
    try:
        baseline_start = time.time()
        time.sleep(BASELINE_SECONDS)
        log(f"{orders:,} orders: run_migrations.py --batched under traffic")
        child.start()
        returncode = child.wait(MIGRATION_TIMEOUT_S)
        time.sleep(SETTLE_SECONDS)
    finally:
        child.kill()
        traffic.stop()
        sampler.stop()
    backfills = shop_module.backfill_runs_of(url)
    commits = commit_times(revisions, sampler.versions, applied_times(child.lines))
    segments = build_segments(baseline_start=baseline_start, child_start=child.started, child_end=child.ended,
                              revisions=revisions, commits=commits, lock_starts=sampler.lock_starts,
                              backfills=backfills)
    stats = attribute(segments, traffic.statements, sampler.waits)
    by_stream = {f"{t} {o}": sum(1 for s in traffic.statements if (s.table, s.operation) == (t, o))
                 for t in TABLES for o in OPERATIONS}
    result = {
        "shop": {**{k: v for k, v in dataclasses.asdict(shop).items() if k != "ids"}, "database": url.rsplit("/", 1)[-1]},
        "revisions": revisions,
        "committed": commits,
        "migration": {"returncode": returncode, "seconds": child.ended - child.started,
                      "output_tail": [line for _, line in child.lines[-40:]]},
        "backfills": [dataclasses.asdict(run) for run in backfills],
        "load": {"statements": len(traffic.statements), "by_stream": by_stream, "errors": len(traffic.errors),
                 "first_error": traffic.errors[0].message if traffic.errors else None},
        "sampler": {"samples": sampler.samples, "errors": sampler.errors[:10], "lock_wait_samples": len(sampler.waits)},
        **report.summarize(stats),
    }
    longest = result["overall"]["longest"]
    log(f"{orders:,} orders: upgrade {result['migration']['seconds']:.1f} s, exit {returncode}, longest stall "
        f"{report.fmt_ms(longest and longest['max_ms'])} ms"
        + (f" ({longest['stream']} during {longest['during']})" if longest else ""))
    if returncode != 0:
        log("run_migrations.py said:\n  " + "\n  ".join(result["migration"]["output_tail"][-15:]))
    return result


def uncommitted_paths() -> list[str]:
    """Files that would make the revisions measured differ from the commit's."""
    done = subprocess.run(["git", "status", "--porcelain", "--", "alembic", "backend", "run_migrations.py"],
                          cwd=ROOT, capture_output=True, text=True)
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # so that the child is killed and the scratch databases dropped


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    options = parse_args(raw)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    started = time.perf_counter()
    results, machine = [], None
    for orders in options.orders:
        url = create_bench_database(options.database_url, prefix="bench_upgrade")
        try:
            if machine is None:
                machine = machine_info(options.database_url, url)
            results.append(measure(url, orders, options))
        finally:
            if options.keep_database:
                log(f"kept: {url}")
            else:
                from backend.migrations.safety.databases import drop_scratch_database

                drop_scratch_database(url)
    header = {
        "date": date, "machine": machine, "from": shop_module.FOUNDATION, "uncommitted": uncommitted_paths(),
        "command": " ".join(["python -m bench.upgrade", *map(shlex.quote, raw)]),
        "migration_command": migration_module.shown_command(), "interval_ms": options.load_interval_ms,
        "sample_ms": options.sample_ms, "locales": len(shop_module.DEFAULT_LOCALES), "seed": options.seed,
    }
    text = report.document(header, results)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    stem = unused_stem(options.output_dir, f"{date}-upgrade-{report.size_label(options.orders)}")
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({**header, "sizes": results}, indent=1, default=str))
    print(text)
    log(f"done in {time.perf_counter() - started:.0f} s: {stem}.md, .json")
    failed = [r["shop"]["orders"] for r in results if r["migration"]["returncode"] != 0]
    if failed:
        log(f"UPGRADE FAILED at {', '.join(f'{n:,}' for n in failed)} orders")
        return 1
    return 0
