"""Which segment of the time line each shop statement and each lock wait belongs to,
and the worst of each per segment.

A statement counts for the segment in which its slot fell (when it was due, not when
it was sent): one queued behind a blocked statement was stalled by what ran then,
and its latency is measured from that slot (coordinated omission). A lock wait
counts for the segment in which the sampler saw it, with the longest wait seen then.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from bench.upgrade.timeline import BASELINE, Segment

TABLES = ("orders", "users", "product_translations")
OPERATIONS = ("read", "write")


@dataclass(frozen=True)
class Statement:
    table: str
    operation: str
    slot: float  # wall clock time it was due
    from_slot_ms: float  # due -> answered
    service_ms: float  # sent -> answered


@dataclass(frozen=True)
class LockWait:
    at: float  # wall clock time of the sample
    waited_ms: float
    waiter: str
    blocker: str


@dataclass
class Worst:
    count: int = 0
    max_ms: float | None = None
    slot: float | None = None

    def add(self, statement: Statement) -> None:
        self.count += 1
        if self.max_ms is None or statement.from_slot_ms > self.max_ms:
            self.max_ms, self.slot = statement.from_slot_ms, statement.slot


@dataclass
class SegmentStats:
    segment: Segment
    worst: dict[tuple[str, str], Worst] = field(
        default_factory=lambda: {(t, o): Worst() for t in TABLES for o in OPERATIONS})
    lock_wait: LockWait | None = None

    def add_wait(self, wait: LockWait) -> None:
        if self.lock_wait is None or wait.waited_ms > self.lock_wait.waited_ms:
            self.lock_wait = wait

    def longest(self) -> tuple[tuple[str, str] | None, float | None]:
        """The (table, operation) with the longest stall, and that stall."""
        measured = [(key, w.max_ms) for key, w in self.worst.items() if w.max_ms is not None]
        if not measured:
            return None, None
        return max(measured, key=lambda item: item[1])


def locate(segments: Sequence[Segment], at: float) -> int | None:
    """Index of the segment holding `at` (start inclusive, end exclusive; the last
    segment keeps its end), or None outside them all."""
    if not segments or at < segments[0].start or at > segments[-1].end:
        return None
    index = bisect.bisect_right([s.start for s in segments], at) - 1
    if at >= segments[index].end and index != len(segments) - 1:
        return None  # a hole between segments (there are none when built by timeline)
    return index


def attribute(segments: Sequence[Segment], statements: Iterable[Statement],
              waits: Iterable[LockWait]) -> list[SegmentStats]:
    stats = [SegmentStats(segment) for segment in segments]
    for statement in statements:
        index = locate(segments, statement.slot)
        key = (statement.table, statement.operation)
        if index is not None and key in stats[index].worst:
            stats[index].worst[key].add(statement)
    for wait in waits:
        index = locate(segments, wait.at)
        if index is not None:
            stats[index].add_wait(wait)
    return stats


def overall(stats: Sequence[SegmentStats]) -> SegmentStats:
    """The whole upgrade (every segment but the baseline) as one segment."""
    during = [s for s in stats if s.segment.kind != BASELINE]
    if not during:
        return SegmentStats(Segment("overall", "overall", 0.0, 0.0))
    total = SegmentStats(Segment("overall", "overall", during[0].segment.start, during[-1].segment.end))
    for s in during:
        for key, worst in s.worst.items():
            mine = total.worst[key]
            mine.count += worst.count
            if worst.max_ms is not None and (mine.max_ms is None or worst.max_ms > mine.max_ms):
                mine.max_ms, mine.slot = worst.max_ms, worst.slot
        if s.lock_wait is not None:
            total.add_wait(s.lock_wait)
    return total


def segment_of(stats: Sequence[SegmentStats], at: float | None) -> str | None:
    """The name of the segment holding `at`, to say where the worst happened."""
    if at is None:
        return None
    index = locate([s.segment for s in stats], at)
    return None if index is None else stats[index].segment.name
