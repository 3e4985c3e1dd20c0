"""May the next batch of a run start now? Maintenance windows first, then health.

No batch starts outside a window, nor when its expected duration (the slowest of
the run's recent batches) would carry it past the window's end. A refusal says why
and when to ask again; the run then waits (status `waiting`), from durable state.

Health checks query PostgreSQL's statistics views, which costs more than a small
batch's bookkeeping; a healthy answer is therefore reused for
`health_check_interval` seconds by the same executor (its ExecutorMemory; a tripped
one never is).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill import health
from backend.backfill.memory import ExecutorMemory
from backend.backfill.policy import RunPolicy
from backend.backfill.settings import EngineSettings
from backend.backfill.model import BatchStatus
from backend.backfill.state import backfill_batches

RECENT_BATCHES = 5
NO_WINDOW_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str | None = None
    retry_at: datetime | None = None
    actor: str | None = None  # what refused: "maintenance window", "health check <name>"


ADMITTED = Admission(True)


def expected_batch_duration(connection: Connection, run_id: int) -> timedelta:
    durations = connection.execute(
        sa.select(backfill_batches.c.duration_ms)
        .where(backfill_batches.c.run_id == run_id, backfill_batches.c.status == BatchStatus.SUCCEEDED)
        .order_by(backfill_batches.c.finished_at.desc())
        .limit(RECENT_BATCHES)
    ).scalars().all()
    return timedelta(milliseconds=max(durations)) if durations else timedelta(0)


def admit(connection: Connection, backfill, run, policy: RunPolicy, settings: EngineSettings,
          now: datetime, memory: ExecutorMemory) -> Admission:
    if not policy.schedule.always_open:
        expected = expected_batch_duration(connection, run.id)
        allowed, retry_at = policy.schedule.may_start(now, expected)
        if not allowed:
            if retry_at is None:
                return Admission(False, "no maintenance window ahead", now + NO_WINDOW_RETRY, "maintenance window")
            window = policy.schedule.current(now)
            if window is None:
                reason = f"outside the maintenance windows ({policy.schedule.text})"
            else:
                reason = (f"the next batch (~{expected.total_seconds():.1f}s) would overrun the window "
                          f"ending at {window.end.isoformat(timespec='minutes')}")
            return Admission(False, reason, retry_at, "maintenance window")
    problem = _health_problem(connection, backfill, policy, settings, now, memory)
    if problem:
        name, reason = problem
        return Admission(False, f"backing off: {reason}", now + timedelta(seconds=settings.health_backoff_seconds),
                         f"health check {name}")
    return ADMITTED


def _health_problem(connection: Connection, backfill, policy: RunPolicy, settings: EngineSettings,
                    now: datetime, memory: ExecutorMemory) -> tuple[str, str] | None:
    if not policy.health_checks:
        return None
    key = (str(connection.engine.url), backfill.name, policy.health_checks)
    if now < memory.healthy_until.get(key, now):
        return None
    problem = health.first_problem(connection, backfill, settings, policy.health_checks)
    if problem is None and settings.health_check_interval > 0:
        memory.healthy_until[key] = now + timedelta(seconds=settings.health_check_interval)
    else:
        memory.healthy_until.pop(key, None)
    return problem
