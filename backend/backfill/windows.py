"""Maintenance windows: when batches may start.

Two forms, several windows separated by `;`:

    sat,sun 01:00-05:00 Europe/Berlin      days, local start-end, optional time zone
    mon-fri 22:30-02:00                    a window may cross midnight (UTC by default)
    daily 03:00-04:00 America/New_York     `daily` or `*` for every day
    cron(0 1 * * sat) 4h Europe/Berlin     a cron expression (croniter) and a duration

An empty specification means "always open". Times are local wall-clock times in the
window's zone (zoneinfo), so a window keeps its local hours across daylight-saving
changes; its length in real time may then be an hour shorter or longer.
Everything here is pure: the current time is always an argument.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_CRON = re.compile(r"^cron\((?P<expr>[^)]*)\)\s+(?P<rest>.+)$")


class WindowSpecError(ValueError):
    """An invalid window specification; the message names the bad part."""


@dataclass(frozen=True)
class Interval:
    start: datetime  # aware, UTC
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class DailyWindow:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    zone: ZoneInfo
    text: str

    def intervals_around(self, moment: datetime) -> Iterator[Interval]:
        """Intervals whose start is between 2 days before and 9 days after `moment`."""
        local_day = moment.astimezone(self.zone).date()
        for offset in range(-2, 10):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day + timedelta(days=1) if self.end <= self.start else day
            start = _local(day, self.start, self.zone)
            end = _local(end_day, self.end, self.zone)
            if end > start:
                yield Interval(start, end)


@dataclass(frozen=True)
class CronWindow:
    expression: str
    duration: timedelta
    zone: ZoneInfo
    text: str

    def intervals_around(self, moment: datetime) -> Iterator[Interval]:
        local = moment.astimezone(self.zone)
        # get_prev is strictly before its start: from a second later, a window
        # opening exactly at `moment` counts as open (cron has minute resolution).
        previous = croniter(self.expression, local + timedelta(seconds=1)).get_prev(datetime)
        yield Interval(previous.astimezone(timezone.utc), (previous + self.duration).astimezone(timezone.utc))
        upcoming = croniter(self.expression, local)
        for _ in range(50):
            start = upcoming.get_next(datetime)
            yield Interval(start.astimezone(timezone.utc), (start + self.duration).astimezone(timezone.utc))


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc)


@dataclass(frozen=True)
class WindowSchedule:
    windows: tuple[DailyWindow | CronWindow, ...]
    text: str = ""

    @property
    def always_open(self) -> bool:
        return not self.windows

    def _intervals(self, moment: datetime) -> list[Interval]:
        return sorted((i for w in self.windows for i in w.intervals_around(moment)), key=lambda i: i.start)

    def current(self, moment: datetime) -> Interval | None:
        """The open interval containing `moment` (merged with overlapping ones), or None."""
        if self.always_open:
            return None
        containing = [i for i in self._intervals(moment) if i.contains(moment)]
        if not containing:
            return None
        merged = Interval(min(i.start for i in containing), max(i.end for i in containing))
        for interval in self._intervals(merged.end):  # a window that starts as this one ends
            if interval.start <= merged.end < interval.end:
                merged = Interval(merged.start, interval.end)
        return merged

    def is_open(self, moment: datetime) -> bool:
        return self.always_open or self.current(moment) is not None

    def next_opening(self, moment: datetime) -> datetime | None:
        """When the next window opens after `moment` (None if always open)."""
        if self.always_open:
            return None
        upcoming = [i.start for i in self._intervals(moment) if i.start > moment]
        return upcoming[0] if upcoming else None

    def may_start(self, moment: datetime, expected: timedelta) -> tuple[bool, datetime | None]:
        """Whether a batch expected to take `expected` may start now without
        overrunning the window; if not, when to try again."""
        if self.always_open:
            return True, None
        interval = self.current(moment)
        if interval is not None and moment + expected <= interval.end:
            return True, None
        return False, self.next_opening(moment)

    def openings(self, start: datetime, until: datetime) -> list[Interval]:
        """The intervals that begin in [start, until), for estimates."""
        return list(self.iter_openings(start, until))

    def iter_openings(self, start: datetime, until: datetime) -> Iterator[Interval]:
        """The same, one at a time: an estimate stops as soon as the work fits
        (a window every 2 minutes has 525,600 openings in two years)."""
        last: Interval | None = None
        moment = start
        while moment < until:
            batch = [i for i in self._intervals(moment) if i.start >= moment and i.start < until]
            batch = [i for i in batch if last is None or i.start > last.start]
            if not batch:
                moment += timedelta(days=7)
                continue
            yield from batch
            last = batch[-1]
            moment = last.start + timedelta(seconds=1)


def parse_windows(spec: str | None) -> WindowSchedule:
    """Parse a specification; raises WindowSpecError naming the bad part."""
    if spec is None or not spec.strip():
        return WindowSchedule(())
    windows = []
    for part in spec.split(";"):
        part = part.strip()
        if not part:
            raise WindowSpecError(f"empty window in {spec!r} (stray ';')")
        windows.append(_parse_one(part))
    return WindowSchedule(tuple(windows), spec.strip())


def _parse_one(text: str) -> DailyWindow | CronWindow:
    cron = _CRON.match(text)
    if cron:
        return _parse_cron(text, cron.group("expr").strip(), cron.group("rest").split())
    if text.startswith("cron"):
        raise WindowSpecError(f"window {text!r}: write cron windows as 'cron(<5 fields>) <duration> [zone]'")
    fields = text.split()
    if len(fields) not in (2, 3):
        raise WindowSpecError(
            f"window {text!r}: expected '<days> <HH:MM>-<HH:MM> [zone]', e.g. 'sat,sun 01:00-05:00 Europe/Berlin'"
        )
    days = _parse_days(text, fields[0])
    start, end = _parse_hours(text, fields[1])
    zone = _parse_zone(text, fields[2] if len(fields) == 3 else "UTC")
    return DailyWindow(days, start, end, zone, text)


def _parse_days(window: str, text: str) -> frozenset[int]:
    if text.lower() in ("daily", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.lower().split(","):
        bounds = item.split("-")
        if len(bounds) > 2 or not all(b in DAY_NAMES for b in bounds):
            raise WindowSpecError(f"window {window!r}: bad day {item!r} (use mon..sun, ranges like mon-fri, or daily)")
        first, last = DAY_NAMES.index(bounds[0]), DAY_NAMES.index(bounds[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        days.update(span)
    return frozenset(days)


def _parse_hours(window: str, text: str) -> tuple[time, time]:
    pieces = text.split("-")
    if len(pieces) != 2:
        raise WindowSpecError(f"window {window!r}: bad hours {text!r} (use HH:MM-HH:MM)")
    parsed = []
    for piece in pieces:
        match = _TIME.match(piece)
        if not match:
            raise WindowSpecError(f"window {window!r}: bad time {piece!r} (use HH:MM, 00:00 to 23:59)")
        parsed.append(time(int(match.group(1)), int(match.group(2))))
    if parsed[0] == parsed[1]:
        raise WindowSpecError(f"window {window!r}: start and end are both {pieces[0]} (an empty window)")
    return parsed[0], parsed[1]


def _parse_zone(window: str, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowSpecError(f"window {window!r}: unknown time zone {name!r}") from None


def _parse_cron(window: str, expression: str, rest: list[str]) -> CronWindow:
    if not rest or len(rest) > 2:
        raise WindowSpecError(f"window {window!r}: expected a duration after the cron expression, e.g. '4h'")
    if len(expression.split()) != 5:
        raise WindowSpecError(f"window {window!r}: cron expression {expression!r} must have 5 fields")
    try:
        croniter(expression)
    except (CroniterBadCronError, CroniterBadDateError, ValueError) as exc:
        raise WindowSpecError(f"window {window!r}: bad cron expression {expression!r} ({exc})") from None
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise WindowSpecError(f"window {window!r}: cron expression {expression!r} never fires") from None
    match = _DURATION.match(rest[0])
    if not match or not any(match.groups()):
        raise WindowSpecError(f"window {window!r}: bad duration {rest[0]!r} (use e.g. 4h, 90m, 1h30m)")
    d, h, m = (int(g) if g else 0 for g in match.groups())
    minutes = (d * 24 + h) * 60 + m  # plain integers: a huge number cannot overflow here
    if minutes > 7 * 24 * 60:
        raise WindowSpecError(f"window {window!r}: duration {rest[0]!r} is longer than a week")
    duration = timedelta(minutes=minutes)
    zone = _parse_zone(window, rest[1] if len(rest) == 2 else "UTC")
    return CronWindow(expression, duration, zone, window)
