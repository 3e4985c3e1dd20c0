"""backend/backfill/progress.py: the one computation of rate, ETA and window plan
(the CLI's snapshot and the API's view both call `pace`)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from backend.backfill.progress import STILL, RecentWork, pace, percent_done
from backend.backfill.windows import parse_windows

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)  # a Tuesday


def test_the_rate_counts_a_batch_from_its_start_even_before_the_window():
    recent = RecentWork(rows=600, first_start=NOW - timedelta(seconds=120))
    assert recent.rows_per_second(NOW) == 5.0  # not 600 rows / 60 s
    assert RecentWork().rows_per_second(NOW) is None
    assert RecentWork(rows=10, first_start=NOW).rows_per_second(NOW) is None


def test_eta_is_the_rest_at_the_recent_rate():
    moving = pace(rows_scanned=400, rows_total=1000, recent=RecentWork(100, NOW - timedelta(seconds=40)), as_of=NOW)
    assert (moving.rows_per_second, moving.eta_seconds, moving.plan) == (2.5, 240.0, None)
    assert pace(10, None, RecentWork(100, NOW - timedelta(seconds=40)), NOW).eta_seconds is None  # no total
    assert pace(1200, 1000, RecentWork(100, NOW - timedelta(seconds=40)), NOW).eta_seconds == 0.0  # estimate low


def test_with_maintenance_windows_the_rest_is_spread_over_them():
    schedule = parse_windows("daily 01:00-03:00 UTC")
    moving = pace(0, 36_000, RecentWork(3600, NOW - timedelta(seconds=3600)), NOW, schedule)
    assert moving.eta_seconds == 36_000.0  # 10 hours at 1 row/s: 5 windows of 2 hours
    assert moving.plan.windows == 5
    assert moving.plan.finish_at == datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)


def test_shown_figures_are_rounded_and_a_still_run_shows_none():
    moving = pace(0, 10, RecentWork(7, NOW - timedelta(seconds=3)), NOW)
    assert (moving.rows_per_second_shown, moving.eta_seconds_shown) == (2.3, 4.3)
    assert (STILL.rows_per_second_shown, STILL.eta_seconds_shown, STILL.plan) == (None, None, None)


def test_percent_never_claims_100_before_the_end():
    assert percent_done("running", 1000, 900) == 99.9
    assert percent_done("completed", 10, 900) == 100.0
    assert percent_done("running", 10, None) is None
