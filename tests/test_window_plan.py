"""The window-aware ETA walks the openings lazily (issue 21): it stops once the work
fits, never walks more than MAX_PLANNED_WINDOWS, and a second snapshot of the same
run reuses the openings already computed. Measured in openings visited, not time."""
from datetime import datetime, timedelta, timezone

import pytest

from backend.backfill import estimate
from backend.backfill.windows import WindowSchedule, parse_windows

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=timezone.utc)
FIVE_HOURS = 5 * 3600


@pytest.fixture
def visits(monkeypatch):
    """Counts every opening the schedules generate."""
    counted = {"openings": 0}
    original = WindowSchedule.iter_openings

    def counting(self, start, until):
        for interval in original(self, start, until):
            counted["openings"] += 1
            yield interval

    monkeypatch.setattr(WindowSchedule, "iter_openings", counting)
    estimate._OPENINGS.clear()
    return counted


@pytest.mark.parametrize("spec, windows", [
    ("cron(0 * * * *) 10m", 31),      # rare: 10 minutes an hour
    ("cron(*/15 * * * *) 5m", 61),
    ("cron(*/2 * * * *) 1m", 301),    # frequent: 525,600 openings in the 730-day horizon
])
def test_the_plan_visits_only_the_openings_the_work_needs(visits, spec, windows):
    plan = estimate.window_plan(parse_windows(spec), NOW, FIVE_HOURS)
    assert plan.windows == windows and plan.finish_at is not None
    assert visits["openings"] <= windows + 1  # not the horizon's


def test_a_frequent_window_costs_no_more_than_the_bound_however_long_the_work(visits):
    rare = estimate.window_plan(parse_windows("cron(0 0 1 * *) 10m"), NOW, 10**9)  # monthly: 24 in two years
    rare_visits = visits["openings"]
    visits["openings"] = 0
    frequent = estimate.window_plan(parse_windows("cron(*/2 * * * *) 1m"), NOW, 10**9)
    assert rare.finish_at is None and frequent.finish_at is None  # "more than N windows"
    assert frequent.windows == estimate.MAX_PLANNED_WINDOWS
    assert visits["openings"] <= estimate.MAX_PLANNED_WINDOWS + 1
    assert rare_visits <= estimate.MAX_PLANNED_WINDOWS + 1


def test_the_next_snapshot_reuses_the_openings_already_walked(visits):
    schedule = parse_windows("cron(*/2 * * * *) 1m")
    first = estimate.window_plan(schedule, NOW, FIVE_HOURS)
    walked = visits["openings"]
    later = estimate.window_plan(schedule, NOW + timedelta(seconds=1), FIVE_HOURS - 1)
    assert visits["openings"] <= walked + 1  # the snapshot a second later computes (almost) nothing anew
    assert later.windows == first.windows
    assert later.finish_at == first.finish_at  # as the same plan, computed afresh, says:
    estimate._OPENINGS.clear()
    assert estimate.window_plan(schedule, NOW + timedelta(seconds=1), FIVE_HOURS - 1) == later


def test_a_plan_asked_for_an_earlier_moment_starts_from_that_moment(visits):
    schedule = parse_windows("cron(0 * * * *) 10m")
    estimate.window_plan(schedule, NOW + timedelta(days=3), 600)
    plan = estimate.window_plan(schedule, NOW, 600)
    # the rest of the window open at 12:00:30, then 30 s of the next one: not three days later
    assert plan == estimate.WindowPlan(2, NOW, datetime(2026, 12, 1, 13, 0, 30, tzinfo=timezone.utc))
