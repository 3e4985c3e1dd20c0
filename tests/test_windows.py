"""Maintenance window arithmetic: pure functions, the time is always given."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import re

import pytest

from backend.backfill.windows import WindowSpecError, parse_windows

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def at(*args, tz=UTC):
    return datetime(*args, tzinfo=tz)


def test_empty_means_always_open():
    schedule = parse_windows("")
    assert schedule.always_open and schedule.is_open(at(2026, 1, 1))
    assert schedule.may_start(at(2026, 1, 1), timedelta(hours=5)) == (True, None)
    assert parse_windows(None).always_open


def test_weekend_nights_in_berlin():
    schedule = parse_windows("sat,sun 01:00-05:00 Europe/Berlin")
    # Saturday 2026-11-28 02:00 Berlin = 01:00 UTC (CET, UTC+1)
    assert schedule.is_open(at(2026, 11, 28, 2, 0, tz=BERLIN))
    assert not schedule.is_open(at(2026, 11, 28, 5, 0, tz=BERLIN))
    assert not schedule.is_open(at(2026, 11, 27, 2, 0, tz=BERLIN))  # Friday
    assert schedule.next_opening(at(2026, 11, 24, 12, 0)) == at(2026, 11, 28, 1, 0, tz=BERLIN)


def test_window_crossing_midnight():
    schedule = parse_windows("fri 22:00-02:00")
    assert schedule.is_open(at(2026, 11, 27, 23, 30))  # Friday night
    assert schedule.is_open(at(2026, 11, 28, 1, 59))   # Saturday morning, same window
    assert not schedule.is_open(at(2026, 11, 28, 2, 0))
    assert schedule.current(at(2026, 11, 28, 1, 0)).end == at(2026, 11, 28, 2, 0)


def test_several_windows_and_ranges_of_days():
    schedule = parse_windows("mon-fri 03:00-04:00; sun 10:00-12:00 UTC")
    assert schedule.is_open(at(2026, 11, 25, 3, 30))   # Wednesday
    assert schedule.is_open(at(2026, 11, 29, 11, 0))   # Sunday
    assert not schedule.is_open(at(2026, 11, 28, 3, 30))  # Saturday
    assert schedule.next_opening(at(2026, 11, 28, 5, 0)) == at(2026, 11, 29, 10, 0)


def test_spring_forward_night_is_an_hour_shorter():
    # Europe/Berlin jumps from 02:00 to 03:00 on 2026-03-29.
    schedule = parse_windows("sun 01:00-05:00 Europe/Berlin")
    window = schedule.current(at(2026, 3, 29, 1, 30, tz=BERLIN))
    assert window.end - window.start == timedelta(hours=3)
    assert window.start == at(2026, 3, 29, 0, 0)  # 01:00 CET
    assert window.end == at(2026, 3, 29, 3, 0)    # 05:00 CEST


def test_fall_back_night_is_an_hour_longer():
    # Europe/Berlin goes back from 03:00 to 02:00 on 2026-10-25.
    schedule = parse_windows("sun 01:00-05:00 Europe/Berlin")
    window = schedule.current(at(2026, 10, 25, 2, 30))
    assert window.end - window.start == timedelta(hours=5)


def test_cron_window_with_duration_and_zone():
    schedule = parse_windows("cron(30 23 * * *) 2h Asia/Tokyo")
    assert schedule.is_open(at(2026, 11, 25, 0, 30, tz=ZoneInfo("Asia/Tokyo")))
    assert not schedule.is_open(at(2026, 11, 25, 2, 0, tz=ZoneInfo("Asia/Tokyo")))
    assert schedule.next_opening(at(2026, 11, 25, 12, 0)) == at(2026, 11, 25, 23, 30, tz=ZoneInfo("Asia/Tokyo"))


def test_a_batch_may_not_overrun_the_window():
    schedule = parse_windows("daily 01:00-02:00")
    assert schedule.may_start(at(2026, 11, 25, 1, 50), timedelta(minutes=5)) == (True, None)
    allowed, retry_at = schedule.may_start(at(2026, 11, 25, 1, 58), timedelta(minutes=5))
    assert not allowed and retry_at == at(2026, 11, 26, 1, 0)


def test_openings_between_two_dates():
    schedule = parse_windows("sat,sun 01:00-05:00")
    found = schedule.openings(at(2026, 11, 24), at(2026, 12, 8))
    assert [i.start.day for i in found] == [28, 29, 5, 6]


@pytest.mark.parametrize("spec, message", [
    ("sat 01:00", "bad hours '01:00'"),
    ("sat", "expected '<days> <HH:MM>-<HH:MM> [zone]'"),
    ("funday 01:00-02:00", "bad day 'funday'"),
    ("sat 01:00-24:30", "bad time '24:30'"),
    ("sat 1-2", "bad time '1'"),
    ("sat 01:00-02:00 Europe/Nowhere", "unknown time zone 'Europe/Nowhere'"),
    ("sat 02:00-02:00", "an empty window"),
    ("sat 01:00-02:00;", "stray ';'"),
    ("cron(0 1 * *) 1h", "must have 5 fields"),
    ("cron(0 99 * * *) 1h", "bad cron expression"),
    ("cron(0 1 * * *) soon", "bad duration 'soon'"),
    ("cron(0 1 * * *)", "write cron windows as"),
    ("cron(0 1 * * *) 9d", "longer than a week"),
])
def test_each_invalid_spec_names_its_bad_part(spec, message):
    with pytest.raises(WindowSpecError, match=re.escape(message)):
        parse_windows(spec)
