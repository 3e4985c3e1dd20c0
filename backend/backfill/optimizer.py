"""Adaptive batch size: aim each batch at a target duration (pt-online-schema-change's
chunk-time idea), within [min, max].

Pure: the caller gives the recent batches (size used, duration taken). The rate is
an exponentially weighted average, so one slow batch moves the size a little, not
to the floor; and one step never changes the size by more than a factor of two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class SizingPolicy:
    target_seconds: float = 0.1
    min_size: int = 100
    max_size: int = 50_000
    smoothing: float = 0.3  # weight of the newest batch in the average rate
    max_step: float = 2.0

    def __post_init__(self):
        if not 0 < self.min_size <= self.max_size:
            raise ValueError(f"batch size bounds must satisfy 0 < min <= max, got [{self.min_size}, {self.max_size}]")
        if self.target_seconds <= 0:
            raise ValueError("the target batch duration must be positive")


@dataclass(frozen=True)
class BatchSample:
    size: int
    seconds: float


def smoothed_rate(samples: Sequence[BatchSample], smoothing: float) -> float | None:
    """Rows per second, oldest sample first, newest weighted by `smoothing`."""
    rate = None
    for sample in samples:
        if sample.seconds <= 0 or sample.size <= 0:
            continue
        current = sample.size / sample.seconds
        rate = current if rate is None else smoothing * current + (1 - smoothing) * rate
    return rate


def next_batch_size(current: int, samples: Sequence[BatchSample], policy: SizingPolicy) -> int:
    rate = smoothed_rate(samples, policy.smoothing)
    if rate is None:
        return max(policy.min_size, min(current, policy.max_size))
    wanted = rate * policy.target_seconds
    wanted = max(current / policy.max_step, min(wanted, current * policy.max_step))
    return int(max(policy.min_size, min(round(wanted), policy.max_size)))
