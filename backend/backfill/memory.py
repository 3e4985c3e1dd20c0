"""What an executor remembers between batches: one per BackfillService, so one per
Celery worker process, shared by the lanes of an in-process run (never stored: a new
process starts with an empty memory and loses nothing that matters).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

HealthKey = tuple[str, str, tuple[str, ...]]  # (database URL, backfill name, health checks)


@dataclass
class ExecutorMemory:
    # Until when the health checks of a backfill on a database last answered healthy:
    # that answer is reused for health_check_interval seconds; a tripped one never is,
    # so no executor can hide a problem another would see (admission.py).
    healthy_until: dict[HealthKey, datetime] = field(default_factory=dict)
    # Since when, and why, this executor could not reach the database for the engine's
    # own bookkeeping (claim, failure record); written to the run once it answers again
    # (runner.py).
    outage: tuple[datetime, str] | None = None
