"""Adaptive batch size against a synthetic workload."""
from __future__ import annotations

import pytest

from backend.backfill.optimizer import BatchSample, SizingPolicy, next_batch_size


def simulate(policy: SizingPolicy, start: int, seconds_per_row: float, steps: int, noise=lambda i: 1.0):
    size, samples, sizes = start, [], []
    for i in range(steps):
        samples.append(BatchSample(size, size * seconds_per_row * noise(i)))
        size = next_batch_size(size, samples[-10:], policy)
        sizes.append(size)
    return sizes


def test_converges_to_the_target_duration():
    policy = SizingPolicy(target_seconds=0.2, min_size=10, max_size=100_000)
    sizes = simulate(policy, start=1000, seconds_per_row=0.00002, steps=40)  # 50k rows/s
    assert sizes[-1] == pytest.approx(10_000, rel=0.05)


def test_shrinks_when_batches_are_slow_and_stays_within_bounds():
    policy = SizingPolicy(target_seconds=0.1, min_size=50, max_size=5000)
    sizes = simulate(policy, start=1000, seconds_per_row=0.01, steps=30)  # 100 rows/s -> 10 rows wanted
    assert sizes[-1] == 50 and min(sizes) >= 50
    sizes = simulate(policy, start=1000, seconds_per_row=1e-7, steps=30)
    assert sizes[-1] == 5000 and max(sizes) <= 5000


def test_one_slow_batch_does_not_collapse_the_size():
    policy = SizingPolicy(target_seconds=0.1, min_size=10, max_size=100_000)
    steady = simulate(policy, start=5000, seconds_per_row=0.00002, steps=30)[-1]
    sizes = simulate(policy, start=5000, seconds_per_row=0.00002, steps=31, noise=lambda i: 20.0 if i == 30 else 1.0)
    assert sizes[-1] >= steady * 0.5  # one 20x slower batch: at most a halving, not a collapse


def test_invalid_bounds_are_refused():
    with pytest.raises(ValueError, match="0 < min <= max"):
        SizingPolicy(min_size=10, max_size=5)
