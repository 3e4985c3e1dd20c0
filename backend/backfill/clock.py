"""Time in UTC, aware, on every dialect (SQLite hands back naive datetimes).

The engine reads the time only through `utcnow()`, whose source tests can replace
(`use_clock` for a block, `set_clock` for a whole worker process) to simulate
maintenance windows, slow batches and waiting.
"""
from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from typing import Callable, Iterator


def _system_now() -> datetime:
    return datetime.now(timezone.utc)


# Process-wide on purpose: the time is the same for every part of a process, and a
# test shifts it for the whole engine (or a whole worker process) at once.
_source: Callable[[], datetime] = _system_now


def utcnow() -> datetime:
    return _source()


@contextlib.contextmanager
def use_clock(source: Callable[[], datetime]) -> Iterator[None]:
    """Make `utcnow()` answer from `source` inside the block."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous


def set_clock(source: Callable[[], datetime]) -> None:
    """Make `utcnow()` answer from `source` for the rest of the process."""
    global _source
    _source = source


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
