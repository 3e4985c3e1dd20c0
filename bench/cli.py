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
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import database, perrow, report
from bench.database import Dataset
from backend.migrations.safety.databases import create_scratch_database, drop_scratch_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ALL_METHODS = ("update", "orm", "offset", "inprocess", "celery1", "celery2")
SUBPROCESS_METHODS = ("update", "orm", "offset", "inprocess", "rowloop", "rowinprocess", "rowidslugs1", "rowidslugs2")
# --per-row: the translation_slugs backfill (bench.perrow), against a hand-written loop; and
# a parallel-safe per-row backfill of the same rows in 1 and 2 lanes (bench.idslugs).
PER_ROW_METHODS = ("rowloop", "rowinprocess", "rowcelery1", "rowidslugs1", "rowidslugs2")
SMOKE_ROWS, SMOKE_BATCH_SIZE = 3_000, 500
SCALING_SIZES = (100_000, 1_000_000)
SCALING_10M = 10_000_000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


# --- the concurrent load ------------------------------------------------------------
class LoadProcess:
    """`python -m bench.load` in its own process; stopped by closing its stdin."""

    def __init__(self, url: str, rate: float, sample_ms: float, out: Path):
        self.url, self.rate, self.sample_ms, self.out = url, rate, sample_ms, out
        self.process: subprocess.Popen | None = None

    def start(self) -> "LoadProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.load", "--url", self.url, "--rate", str(self.rate),
             "--sample-ms", str(self.sample_ms), "--out", str(self.out)],
            cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"the concurrent load did not start (said {line!r})")
        return self

    def stop(self) -> dict:
        assert self.process is not None
        self.process.stdin.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError("the concurrent load did not stop") from None
        return json.loads(self.out.read_text())


# --- the methods ----------------------------------------------------------------------
def suite(options):
    """The module that builds, resets and checks the dataset of the chosen suite."""
    return perrow if options.per_row else database


def celery_concurrency(method: str) -> int | None:
    """celery1 -> 1, rowcelery1 -> 1; None for a method that is not a Celery one."""
    name = method.removeprefix("row")
    return int(name[len("celery"):]) if name.startswith("celery") else None


def run_method_process(method: str, dataset: Dataset, batch_size: int, run_id: int) -> dict:
    command = [sys.executable, "-m", "bench.methods", method, "--url", dataset.url,
               "--batch-size", str(batch_size), "--run-id", str(run_id)]
    done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=900 + dataset.rows / 200)
    if done.returncode != 0:
        raise RuntimeError(f"method {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class CeleryMethod:
    """`celery -A worker worker --concurrency N` started before the clock, the run
    started with worker.tasks.start_run, followed until completed."""

    def __init__(self, dataset: Dataset, concurrency: int, broker_url: str, workdir: Path):
        self.dataset, self.concurrency, self.broker_url = dataset, concurrency, broker_url
        self.log_path = workdir / f"celery{concurrency}.log"
        self.worker = None

    def start(self) -> "CeleryMethod":
        import redis
        from celery import Celery

        from tests.processes import CeleryWorker

        redis.Redis.from_url(self.broker_url).flushall()
        env = child_env(DATABASE_URL=self.dataset.url, CELERY_BROKER_URL=self.broker_url)
        self.worker = CeleryWorker(env, concurrency=self.concurrency, log_path=self.log_path).start()
        self.client = Celery("bench", broker=self.broker_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.worker.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{self._log_tail()}")
            if self.client.control.ping(timeout=0.5) and len(self._processes()) > self.concurrency:
                return self
        raise RuntimeError(f"the Celery worker did not answer within 60 s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def _processes(self) -> list:
        import psutil

        main = psutil.Process(self.worker.process.pid)
        return [main, *main.children(recursive=True)]

    def run(self, run_id: int) -> dict:
        import sqlalchemy as sa

        from backend.backfill.model import RunStatus
        from backend.backfill.state import backfill_runs
        from backend.db import create_db_engine
        from bench.methods import vm_hwm_kb

        engine = create_db_engine(self.dataset.url)
        query = sa.select(backfill_runs.c.status).where(backfill_runs.c.id == run_id)
        timeout = 300 + self.dataset.rows / 200
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
                wall_start, started = time.time(), time.perf_counter()
                self.client.send_task("worker.tasks.start_run", args=[run_id])
                while True:
                    status = connection.execute(query).scalar_one()
                    connection.rollback()
                    if status in RunStatus.FINISHED:
                        break
                    if time.perf_counter() - started > timeout:
                        raise RuntimeError(f"the run did not finish within {timeout:.0f} s:\n{self._log_tail()}")
                    if self.worker.process.poll() is not None:
                        raise RuntimeError(f"the Celery worker exited:\n{self._log_tail()}")
                    time.sleep(0.02)
                wall_s = time.perf_counter() - started
        finally:
            engine.dispose()
        processes = self._processes()
        pool = [vm_hwm_kb(p.pid) or 0 for p in processes[1:]]
        return {"wall_start": wall_start, "wall_end": time.time(), "wall_s": wall_s, "status": status,
                "peak_rss_kb": max(pool) if pool else vm_hwm_kb(processes[0].pid),
                "peak_rss_detail_kb": {"main": vm_hwm_kb(processes[0].pid), "pool": pool}}

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()


def measure(method: str, dataset: Dataset, options, workdir: Path, broker_url: str | None) -> dict:
    """Reset, start the load, run the method, stop the load, check; all the numbers."""
    data = suite(options)
    run_id = data.reset(dataset, options.batch_size, checkpoint=not options.smoke, method=method)
    celery = None
    try:
        if celery_concurrency(method):
            celery = CeleryMethod(dataset, celery_concurrency(method), broker_url, workdir)
            celery.start()
        loadavg = os.getloadavg()
        load = LoadProcess(dataset.url, options.load_rate, options.sample_ms, workdir / f"load-{method}.json").start()
        try:
            if celery:
                outcome = celery.run(run_id)
            else:
                outcome = run_method_process(method, dataset, options.batch_size, run_id)
        finally:
            load_data = load.stop()
    finally:
        if celery:
            celery.stop()
    check = data.verify(dataset, method)
    result = {"method": method, "label": report.LABELS[method], "rows": dataset.rows,
              "wall_s": outcome["wall_s"], "rows_per_s": dataset.rows / outcome["wall_s"],
              "peak_rss_kb": outcome["peak_rss_kb"], "loadavg_before": loadavg, "check": check,
              "window": [outcome["wall_start"], outcome["wall_end"]]}
    for key in ("ru_maxrss_kb", "peak_rss_detail_kb"):
        if key in outcome:
            result[key] = outcome[key]
    if method in report.OURS:
        run = database.run_row(dataset.url, run_id)
        done = database.batches(dataset.url, run_id)
        txn_ms = [float(b["duration_ms"]) for b in done]
        sizes = [b["batch_size"] for b in done]
        check["run_status"] = run.status
        check["correct"] = check["correct"] and run.status == "completed"
        result["run"] = {"id": run_id, "status": run.status, "batch_size": run.batch_size,
                         "max_parallel": run.max_parallel, "batches_done": run.batches_done,
                         "rows_done": run.rows_done, "last_error": run.last_error,
                         "batch_sizes": {"min": min(sizes, default=None), "p50": report.percentile(sizes, 50),
                                         "max": max(sizes, default=None)}}
    else:
        txn_ms = outcome["txn_ms"]
    result["txn"] = report.summary(txn_ms)
    result["load"] = report.load_summary(load_data, (outcome["wall_start"], outcome["wall_end"]))
    result["raw"] = {"txn_ms": txn_ms,
                     "load_latency_ms": [round(s[2], 3) for s in load_data["statements"]
                                         if outcome["wall_start"] <= s[1] <= outcome["wall_end"]]}
    log(f"{method}: {result['wall_s']:.2f} s, {result['rows_per_s']:,.0f} rows/s, "
        f"txn p99 {report._fmt(result['txn']['p99'] if result['txn'] else None, 1)} ms, "
        f"writes p99 {report._fmt(result['load']['p99'], 1)} ms, blocked {result['load']['max_blocked_ms']:,.0f} ms, "
        f"peak {result['peak_rss_kb'] / 1024:.0f} MB, {'correct' if check['correct'] else 'WRONG ' + json.dumps(check)}")
    return result


def create_bench_database(server_url: str, prefix: str = "bench") -> str:
    """A scratch database on the server; one that cannot be reached (or a URL that is
    not one) is a one-line error, not a traceback."""
    import sqlalchemy as sa

    try:
        return create_scratch_database(server_url, prefix)
    except (sa.exc.OperationalError, sa.exc.ArgumentError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        try:
            shown = sa.make_url(server_url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = repr(server_url)
        raise SystemExit(f"error: cannot create a scratch database on {shown}: {reason}") from None


def build_dataset(server_url: str, rows: int, seed: int, data=database) -> Dataset:
    url = create_bench_database(server_url)
    try:
        dataset = data.prepare(url, rows, seed)
    except BaseException:
        drop_scratch_database(url)
        raise
    translations = f"{dataset.translations:,} translations, " if hasattr(dataset, "translations") else ""
    log(f"database {url.rsplit('/', 1)[-1]}: {translations}{dataset.orders:,} orders, {dataset.items:,} items "
        f"(generated in {dataset.generate_s:.1f} s, ready in {dataset.prepare_s:.1f} s)")
    return dataset


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (the lower one of an even count), with every
    run's wall time beside it; correct only if every run was."""
    chosen = dict(sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2])
    chosen["repeats"] = [{"wall_s": r["wall_s"], "correct": r["check"]["correct"]} for r in runs]
    chosen["check"] = {**chosen["check"], "correct": all(r["check"]["correct"] for r in runs)}
    return chosen


def measure_rounds(methods: list[str], dataset: Dataset, options, workdir: Path, broker_url: str | None,
                   label: str = "") -> dict[str, dict]:
    """Each method measured --repeat times, in rounds over all of them (so a slow spell of
    a shared machine falls on every method), and its median run, by method."""
    measured: dict[str, list[dict]] = {method: [] for method in methods}
    for round_number in range(1, options.repeat + 1):
        if options.repeat > 1:
            log(f"{label}round {round_number} of {options.repeat}")
        for method in methods:
            measured[method].append(measure(method, dataset, options, workdir, broker_url))
    return {method: median_run(runs) for method, runs in measured.items()}


def measure_scaling(options, results: list[dict], datasets: list[Dataset], workdir: Path) -> list[dict]:
    """Ours in-process at each scaling size, and the single UPDATE beside it when it is
    among the methods (the database's own cost per row at that size); the main
    dataset's size reuses the runs already made. With --repeat N each size is measured
    N times too, in rounds, and its median run counts: one slow spell of a shared
    machine would otherwise bend the line."""
    methods = ["inprocess", *(["update"] if "update" in options.methods else [])]
    sizes = [*SCALING_SIZES, *((SCALING_10M,) if options.scaling_10m else ())]
    points = []
    for size in sizes:
        runs = {r["method"]: r for r in results if r["method"] in methods and r["rows"] == size}
        if len(runs) < len(methods):
            extra = build_dataset(options.database_url, size, options.seed)
            datasets.append(extra)
            missing = [method for method in methods if method not in runs]
            runs.update(measure_rounds(missing, extra, options, workdir, None,
                                       label=f"scaling {report._rows_label(size)}: "))
            if not options.keep_database:
                drop_scratch_database(extra.url)
                datasets.remove(extra)
        ours, update = runs["inprocess"], runs.get("update")
        points.append({"rows": size, "wall_s": ours["wall_s"], "rows_per_s": ours["rows_per_s"],
                       "peak_rss_kb": ours["peak_rss_kb"],
                       "correct": ours["check"]["correct"] and (update is None or update["check"]["correct"]),
                       "txn": ours["txn"], "load": {k: ours["load"][k] for k in ("p50", "p99", "max", "max_blocked_ms")},
                       "update_wall_s": update["wall_s"] if update else None,
                       "repeats": ours.get("repeats", [])})
    return points


# --- the report -----------------------------------------------------------------------
def machine_info(server_url: str, dataset_url: str) -> dict:
    def meminfo_gb() -> float | None:
        try:
            with open("/proc/meminfo") as f:
                kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
            return round(kb / 1024 / 1024, 1)
        except (OSError, StopIteration):
            return None

    def cpu_model() -> str:
        try:
            with open("/proc/cpuinfo") as f:
                return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            return platform.processor() or "unknown"

    import celery
    import psycopg2
    import sqlalchemy

    def git(*args: str) -> str | None:  # read-only commands
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    changed = git("diff", "--name-only", "HEAD", "--", "backend", "worker")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "engine_files_changed_since_commit": changed.splitlines() if changed else [],
            "nproc": os.cpu_count(), "cpu": cpu_model(), "ram_gb": meminfo_gb(), "arch": platform.machine(),
            "kernel": platform.release(), "python": platform.python_version(),
            "postgresql": database.server_version(dataset_url), "postgresql_settings": database.server_settings(dataset_url),
            "sqlalchemy": sqlalchemy.__version__, "psycopg2": psycopg2.__version__.split()[0],
            "celery": celery.__version__, "loadavg_at_start": os.getloadavg()}


def output_stem(date: str, rows: int, smoke: bool, batch_size: int | None = None, per_row: bool = False) -> str:
    """<date>[-perrow]-<size>, with -b<batch size> when it is not the backfill's own."""
    stem = f"{date}{'-perrow' if per_row else ''}-{'smoke' if smoke else report._rows_label(rows).lower()}"
    return f"{stem}-b{batch_size}" if batch_size else stem


def unused_stem(directory: Path, stem: str) -> Path:
    """directory/stem, or stem-2, -3... when an earlier run's results already have that
    name: a second run on the same day keeps the first one's files."""
    candidate, number = directory / stem, 1
    while any(candidate.with_suffix(suffix).exists() for suffix in (".md", ".json", ".png")):
        number += 1
        candidate = directory / f"{stem}-{number}"
    return candidate


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
        "targets": (report.evaluate_per_row_targets(results) if options.per_row
                    else report.evaluate_targets(results, scaling)),
        "total_s": time.perf_counter() - started,
    }
    table = report.markdown(full)
    stem = unused_stem(options.output_dir, output_stem(
        date, options.rows, options.smoke, None if options.batch_size_is_default else options.batch_size,
        options.per_row))
    stem.with_suffix(".md").write_text(table)
    report.write_json(full, stem.with_suffix(".json"))
    report.chart(full, stem.with_suffix(".png"))
    print(table)
    log(f"done in {full['total_s']:.0f} s: {stem}.md, .json, .png")
    wrong = [r["method"] for r in results if not r["check"]["correct"]]
    wrong += [f"scaling {p['rows']}" for p in scaling if not p["correct"]]
    if wrong:
        log(f"WRONG RESULT: {', '.join(wrong)}")
        return 1
    return 0
