"""Bad input: maintenance window specifications (backend.backfill.windows).

Property-based (hypothesis): on any text, and on near-valid text built from the
grammar's own pieces, parse_windows returns a schedule or raises WindowSpecError,
never anything else; every valid specification generated from the grammar parses,
and the schedule it gives answers is_open / next_opening / may_start for any moment.
The runs are derandomized so that CI sees the same examples every time.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backend.backfill.windows import DAY_NAMES, WindowSchedule, WindowSpecError, parse_windows

PROPERTY = settings(max_examples=200, deadline=None, database=None, derandomize=True)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", "America/St_Johns",
         "Pacific/Chatham", "Asia/Kathmandu", "Etc/GMT+12", "Pacific/Kiritimati"]
BAD_ZONES = ["Europe/Nowhere", "America", "../etc/passwd", "Europe//Berlin", "UTC/", "a" * 300, "\x00", "."]
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
                       timezones=st.just(timezone.utc))

# --- valid specifications ------------------------------------------------------------
day = st.sampled_from(DAY_NAMES)
day_item = st.one_of(day, st.tuples(day, day).map(lambda pair: f"{pair[0]}-{pair[1]}"))
days = st.one_of(st.sampled_from(["daily", "*", "DAILY", "Sat,Sun"]),
                 st.lists(day_item, min_size=1, max_size=4).map(",".join))
clock = st.tuples(st.integers(0, 23), st.integers(0, 59))
hours = st.tuples(clock, clock).filter(lambda pair: pair[0] != pair[1]).map(
    lambda pair: f"{pair[0][0]:02d}:{pair[0][1]:02d}-{pair[1][0]}:{pair[1][1]:02d}")
daily_window = st.tuples(days, hours, st.one_of(st.just(""), st.sampled_from(ZONES))).map(
    lambda parts: " ".join(p for p in parts if p))

cron_fields = st.tuples(
    st.one_of(st.just("*"), st.integers(0, 59).map(str), st.sampled_from(["*/15", "0,30", "5-10"])),
    st.one_of(st.just("*"), st.integers(0, 23).map(str), st.sampled_from(["1-5", "*/6", "22,2"])),
    st.one_of(st.just("*"), st.integers(1, 28).map(str), st.sampled_from(["1-7", "*/10"])),
    st.one_of(st.just("*"), st.integers(1, 12).map(str), st.sampled_from(["jan", "*/3"])),
    st.one_of(st.just("*"), st.integers(0, 6).map(str), st.sampled_from(["mon-fri", "sat,sun", "sun"])),
).map(" ".join)
duration = st.tuples(st.integers(0, 6), st.integers(0, 23), st.integers(0, 59)).filter(any).map(
    lambda dhm: "".join(f"{n}{unit}" for n, unit in zip(dhm, "dhm") if n))
cron_window = st.tuples(cron_fields, duration, st.one_of(st.just(""), st.sampled_from(ZONES))).map(
    lambda parts: f"cron({parts[0]}) {parts[1]}" + (f" {parts[2]}" if parts[2] else ""))
valid_spec = st.lists(st.one_of(daily_window, cron_window), min_size=1, max_size=3).map("; ".join)

# --- near-valid text: the grammar's pieces, shuffled and corrupted --------------------
piece = st.one_of(
    days, hours, duration, cron_fields, st.sampled_from(ZONES + BAD_ZONES),
    st.sampled_from(["cron(", ")", "cron()", ";", "-", ":", ",", " ", "\t", "\n", "24:00", "23:60", "7:5", "1#5",
                     "L", "W", "?", "@daily", "0d", "0h0m", "8d", "1h30", "h", "99999m", "mon-", "-fri", "²",
                     "١٢:٠٠"]),
    st.text(max_size=6),
)
near_valid = st.one_of(
    st.lists(piece, max_size=8).map(" ".join),
    st.tuples(st.lists(piece, max_size=5).map(" ".join), duration, st.sampled_from(ZONES + BAD_ZONES))
    .map(lambda parts: f"cron({parts[0]}) {parts[1]} {parts[2]}"),
    st.lists(st.one_of(valid_spec, st.text(max_size=10)), max_size=3).map(";".join),
)


def parse_or_refuse(spec: str) -> WindowSchedule | None:
    try:
        return parse_windows(spec)
    except WindowSpecError as exc:
        assert str(exc), "a WindowSpecError must say what is wrong"
        return None


@PROPERTY
@given(spec=st.one_of(st.text(), near_valid))
def test_parser_raises_nothing_but_window_spec_error(spec):
    parse_or_refuse(spec)


@settings(PROPERTY, max_examples=40)
@given(spec=valid_spec, moment=moments)
def test_every_valid_spec_parses_and_answers(spec, moment):
    schedule = parse_windows(spec)
    assert len(schedule.windows) == spec.count(";") + 1 and schedule.text == spec.strip()
    opening = schedule.next_opening(moment)
    assert opening is None or opening > moment
    interval = schedule.current(moment)
    assert (interval is not None) == schedule.is_open(moment)
    if interval is not None:
        assert interval.start <= moment < interval.end
    allowed, retry_at = schedule.may_start(moment, timedelta(minutes=1))
    assert allowed or retry_at is None or retry_at > moment


@settings(PROPERTY, max_examples=100)
@given(spec=st.lists(daily_window, min_size=1, max_size=3).map("; ".join), moment=moments)
def test_a_daily_window_is_open_at_the_instant_it_opens(spec, moment):
    schedule = parse_windows(spec)
    opening = schedule.next_opening(moment)
    assert opening is not None and schedule.is_open(opening)


@pytest.mark.parametrize("spec", ["cron(0 1 * * *) 4h", "cron(30 22 * * mon-fri) 2h Europe/Berlin"])
def test_a_cron_window_is_open_at_the_instant_it_opens(spec):
    schedule = parse_windows(spec)
    opening = schedule.next_opening(datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))
    assert schedule.is_open(opening), f"{spec!r} is closed at {opening}, the opening next_opening() announced"
    assert schedule.may_start(opening, timedelta(minutes=1)) == (True, None)


@pytest.mark.parametrize("spec", ["", "   ", None])
def test_empty_means_always_open(spec):
    assert parse_windows(spec).always_open


@settings(max_examples=20, deadline=None, database=None, derandomize=True)
@given(number=st.integers(min_value=10**13, max_value=10**40), unit=st.sampled_from("dhm"))
@example(number=99999999999, unit="d")
def test_huge_cron_duration_is_a_window_spec_error(number, unit):
    with pytest.raises(WindowSpecError, match="longer than a week"):
        parse_windows(f"cron(0 1 * * *) {number}{unit}")


@pytest.mark.parametrize("spec", ["cron(0 1 30 2 *) 1h", "cron(0 1 31 4 *) 2h Europe/Berlin"])
def test_cron_window_that_never_fires_is_refused_when_parsed(spec):
    try:
        schedule = parse_windows(spec)
    except WindowSpecError:
        return
    schedule.is_open(datetime(2026, 11, 25, tzinfo=timezone.utc))  # must not raise either
    pytest.fail(f"{spec!r} was accepted although it never opens")
