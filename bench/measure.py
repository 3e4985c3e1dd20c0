"""Measuring the methods of `python -m bench`: each in its own process (or on Celery
workers) under the concurrent load, repeated in rounds, and at several sizes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import database, perrow, report
from bench.database import Dataset
from backend.migrations.safety.databases import drop_scratch_database
from bench.common import ROOT, child_env, create_bench_database, log


ALL_METHODS = ("update", "orm", "offset", "inprocess", "celery1", "celery2")
SUBPROCESS_METHODS = ("update", "orm", "offset", "inprocess", "rowloop", "rowinprocess", "rowinprocess2", "rowidslugs1", "rowidslugs2")
# --per-row: the translation_slugs backfill (bench.perrow), against a hand-written loop; and
# a parallel-safe per-row backfill of the same rows in 1 and 2 lanes (bench.idslugs).
PER_ROW_METHODS = ("rowloop", "rowinprocess", "rowinprocess2", "rowcelery1", "rowidslugs1", "rowidslugs2")
SMOKE_ROWS, SMOKE_BATCH_SIZE = 3_000, 500
SCALING_SIZES = (100_000, 1_000_000)
SCALING_10M = 10_000_000


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
        f"txn p99 {report.fmt(result['txn']['p99'] if result['txn'] else None, 1)} ms, "
        f"writes p99 {report.fmt(result['load']['p99'], 1)} ms, blocked {result['load']['max_blocked_ms']:,.0f} ms, "
        f"peak {result['peak_rss_kb'] / 1024:.0f} MB, {'correct' if check['correct'] else 'WRONG ' + json.dumps(check)}")
    return result


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
                                       label=f"scaling {report.rows_label(size)}: "))
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
