"""The runs' numbers, read from the database at scrape time.

A custom collector (prometheus_client's documented way to export values that live
elsewhere): each scrape reads the engine's tables, read-only, so every web replica
reports the same truth and nothing is lost when a process restarts. It covers the
runs an operator watches: every unfinished run, and the latest run of each
backfill (so a failed or completed run stays visible until the next one starts).
Each series is labelled by `backfill` and `run_id`; that set stays small, because
finished runs drop out once a newer run of their backfill exists.

The rate and the ETA are backend.backfill.progress's (`snapshot`), the same figures
the CLI, the API and the status page show. The histograms of batch duration and of
rows per batch are built from the succeeded batches' rows, per run, with SQL sums
per bucket (one aggregate query for all the runs watched).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterable, Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine

from backend.backfill import progress
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.model import BatchStatus, Run, RunStatus
from backend.backfill.state import backfill_batches, backfill_runs

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # seconds
ROWS_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000)
RUN_LABELS = ("backfill", "run_id")


class DatabaseCollector(Collector):
    """Collects the watched runs' metrics from `engine` on every scrape."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("backfill_metrics_database_up",
                               "1 when this scrape could read the backfill tables, 0 when the database failed.")
        try:
            with self.engine.connect() as connection:
                families = list(_families(connection))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: cannot read the backfill tables: %s", str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _families(connection: Connection) -> Iterator[Metric]:
    now = utcnow()
    watched = _watched_runs(connection)
    run_ids = [run.id for run in watched]
    batch_counts = _batch_counts(connection, run_ids)
    succeeded = _succeeded_batches(connection, run_ids)

    yield _runs_by_status(connection)
    gauges = _RunGauges()
    duration = HistogramMetricFamily("backfill_batch_duration_seconds",
                                     "Duration of the run's succeeded batches (their transaction).",
                                     labels=RUN_LABELS)
    rows = HistogramMetricFamily("backfill_batch_rows", "Keys walked by each of the run's succeeded batches.",
                                 labels=RUN_LABELS)
    for run in watched:
        labels = [run.name, str(run.id)]
        counts = batch_counts.get(run.id, {})
        gauges.add(labels, run, counts, progress.snapshot(connection, run.id), now)
        done = succeeded.get(run.id)
        if done is not None:
            gauges.last_finished.add_metric(labels, done["last_finished"].timestamp())
            duration.add_metric(labels, _buckets(done["duration"], DURATION_BUCKETS, done["count"]),
                                done["duration_sum"])
            rows.add_metric(labels, _buckets(done["rows"], ROWS_BUCKETS, done["count"]), done["rows_sum"])
    yield from gauges.families()
    yield duration
    yield rows


def _watched_runs(connection: Connection) -> list[Run]:
    """Unfinished runs, and the latest run of each backfill."""
    latest = sa.select(sa.func.max(backfill_runs.c.id)).group_by(backfill_runs.c.name)
    query = (sa.select(backfill_runs)
             .where(sa.or_(backfill_runs.c.status.in_(RunStatus.ACTIVE), backfill_runs.c.id.in_(latest)))
             .order_by(backfill_runs.c.name, backfill_runs.c.id))
    return [Run.from_row(row) for row in connection.execute(query).mappings()]


def _runs_by_status(connection: Connection) -> GaugeMetricFamily:
    counted = dict(connection.execute(
        sa.select(backfill_runs.c.status, sa.func.count()).group_by(backfill_runs.c.status)).all())
    family = GaugeMetricFamily("backfill_runs", "Runs of every backfill, all time, by status.", labels=["status"])
    for status in RunStatus.ALL:
        family.add_metric([str(status)], counted.get(status, 0))
    return family


def _batch_counts(connection: Connection, run_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    if run_ids:
        for run_id, status, count in connection.execute(
            sa.select(backfill_batches.c.run_id, backfill_batches.c.status, sa.func.count())
            .where(backfill_batches.c.run_id.in_(run_ids))
            .group_by(backfill_batches.c.run_id, backfill_batches.c.status)
        ):
            counts.setdefault(run_id, {})[status] = count
    return counts


def _succeeded_batches(connection: Connection, run_ids: list[int]) -> dict[int, dict]:
    """Per run: how many batches succeeded, the last one's end, and the cumulative
    counts of their durations and sizes at or below each bucket's bound."""
    if not run_ids:
        return {}
    batches = backfill_batches

    def at_most(column, bound) -> sa.ColumnElement:
        return sa.func.sum(sa.case((column <= bound, 1), else_=0))

    query = (
        sa.select(batches.c.run_id, sa.func.count(), sa.func.max(batches.c.finished_at),
                  sa.func.coalesce(sa.func.sum(batches.c.duration_ms), 0),
                  sa.func.coalesce(sa.func.sum(batches.c.rows_in_range), 0),
                  *[at_most(batches.c.duration_ms, bound * 1000) for bound in DURATION_BUCKETS],
                  *[at_most(batches.c.rows_in_range, bound) for bound in ROWS_BUCKETS])
        .where(batches.c.run_id.in_(run_ids), batches.c.status == BatchStatus.SUCCEEDED,
               batches.c.duration_ms.is_not(None))
        .group_by(batches.c.run_id)
    )
    found = {}
    durations = len(DURATION_BUCKETS)
    for run_id, count, last_finished, duration_ms, rows, *bucketed in connection.execute(query):
        found[run_id] = {
            "count": count, "last_finished": as_utc(last_finished),
            "duration_sum": int(duration_ms) / 1000.0, "rows_sum": int(rows),
            "duration": [int(n or 0) for n in bucketed[:durations]],
            "rows": [int(n or 0) for n in bucketed[durations:]],
        }
    return found


def _buckets(cumulative: list[int], bounds: Iterable[float], count: int) -> list[tuple[str, float]]:
    return [*((_bound_text(bound), n) for bound, n in zip(bounds, cumulative)), ("+Inf", count)]


def _bound_text(bound: float) -> str:
    return str(float(bound))  # "0.1", "1000.0": as prometheus_client writes its own `le`


class _RunGauges:
    """One family per figure; one sample per watched run (none when unknown)."""

    def __init__(self) -> None:
        def gauge(name: str, documentation: str, *extra: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, labels=[*RUN_LABELS, *extra])

        self.status = gauge("backfill_run_status", "1 for the run's current status, 0 for the others.", "status")
        self.rows_done = gauge("backfill_run_rows_done", "Rows the run changed so far.")
        self.rows_scanned = gauge("backfill_run_rows_scanned", "Keys the run walked so far (its progress).")
        self.rows_total = gauge("backfill_run_rows_total", "Rows to walk (an estimate unless counted exactly).")
        self.batches_done = gauge("backfill_run_batches_done", "Batches that succeeded.")
        self.batches_failed = gauge("backfill_run_batches_failed", "Batches that failed for good.")
        self.in_flight = gauge("backfill_run_batches_in_flight", "Batches pending or running now.")
        self.batches = gauge("backfill_run_batches", "The run's batches by status.", "status")
        self.batch_size = gauge("backfill_run_batch_size", "Rows in the next batches carved (adapted over time).")
        self.rate = gauge("backfill_run_rows_per_second",
                          "Keys walked per second over the last minute (0 when the run is not moving).")
        self.eta = gauge("backfill_run_eta_seconds", "Seconds until done at the current rate (running runs only).")
        self.next_window = gauge("backfill_run_next_window_seconds",
                                 "While waiting: seconds until it tries again (negative: overdue).")
        self.started = gauge("backfill_run_started_timestamp_seconds", "When the run started (Unix time).")
        self.last_finished = gauge("backfill_run_last_batch_finished_timestamp_seconds",
                                   "When its last batch succeeded (Unix time).")

    def add(self, labels: list[str], run: Run, counts: dict[str, int], snapshot: progress.Progress,
            now: datetime) -> None:
        for status in RunStatus.ALL:
            self.status.add_metric([*labels, str(status)], 1 if run.status == status else 0)
        for status in BatchStatus.ALL:
            self.batches.add_metric([*labels, str(status)], counts.get(status, 0))
        self.rows_done.add_metric(labels, run.rows_done)
        self.rows_scanned.add_metric(labels, run.rows_scanned)
        if run.rows_total is not None:
            self.rows_total.add_metric(labels, run.rows_total)
        self.batches_done.add_metric(labels, run.batches_done)
        self.batches_failed.add_metric(labels, run.batches_failed)
        self.in_flight.add_metric(labels, sum(counts.get(status, 0) for status in BatchStatus.IN_FLIGHT))
        self.batch_size.add_metric(labels, run.batch_size)
        self.rate.add_metric(labels, snapshot.rows_per_second or 0.0)
        if snapshot.eta_seconds is not None:
            self.eta.add_metric(labels, snapshot.eta_seconds)
        next_window_at = as_utc(run.next_window_at)
        if run.status == RunStatus.WAITING and next_window_at is not None:
            self.next_window.add_metric(labels, (next_window_at - now).total_seconds())
        started = as_utc(run.started_at)
        if started is not None:
            self.started.add_metric(labels, started.timestamp())

    def families(self) -> list[GaugeMetricFamily]:
        return [self.status, self.rows_done, self.rows_scanned, self.rows_total, self.batches_done,
                self.batches_failed, self.in_flight, self.batches, self.batch_size, self.rate, self.eta,
                self.next_window, self.started, self.last_finished]
