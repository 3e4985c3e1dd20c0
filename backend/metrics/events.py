"""The events a process sees, counted where they happen: the engine's one door to
prometheus_client (it calls these functions, one per event, and imports nothing
else of the metrics).

What lives in the database (rows done, statuses, batch durations) is read at scrape
time by backend.metrics.database instead, so that every replica reports the same
truth. What is here happens in one process and leaves no row behind: a batch's
outcome as that process saw it (a retry leaves only its last error), a lease taken
from a vanished holder, a health check that tripped, the batches recovery sent
again, a revision applied and how long it took, a DDL lock wait.

With PROMETHEUS_MULTIPROC_DIR set (Celery's prefork children, gunicorn's workers,
scripts), prometheus_client keeps each process's values in files there and the
exporters add them up (backend.metrics.exposition). The metrics are created on
first use, not at import: an import never touches that directory, so a bad setting
is reported by Config first. An event that cannot be recorded (a full disk) is
logged and never fails the batch or the migration it happened in.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

log = logging.getLogger("backend.backfill.events")
T = TypeVar("T")

# Every process's counters, on a registry of their own (not prometheus_client's
# global one, so that nothing else a library registers there is exported by us).
REGISTRY = CollectorRegistry(auto_describe=True)

# A revision's DDL takes milliseconds to minutes (an index built concurrently).
REVISION_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf"))


@dataclass(frozen=True)
class _Metrics:
    batch_outcomes: Counter
    lease_takeovers: Counter
    health_check_trips: Counter
    recovery_dispatched: Counter
    revisions_applied: Counter
    revision_seconds: Histogram
    ddl_lock_waits: Counter


@functools.cache
def _metrics() -> _Metrics:
    return _Metrics(
        batch_outcomes=Counter(
            "backfill_batch_outcomes", "Batches run by this process, by outcome (succeeded, retry, split, failed, "
            "done, leased, waiting, not_runnable).", ["outcome"], registry=REGISTRY),
        lease_takeovers=Counter(
            "backfill_lease_takeovers", "Batch leases that expired with their holder gone, taken over by this "
            "process (claimed again, or released by recovery).", registry=REGISTRY),
        health_check_trips=Counter(
            "backfill_health_check_trips", "Health checks that refused a batch, by check.", ["check"],
            registry=REGISTRY),
        recovery_dispatched=Counter(
            "backfill_recovery_dispatched_batches", "Batches the periodic recovery handed to the workers again "
            "(lost messages, dead workers, runs nobody advanced).", registry=REGISTRY),
        revisions_applied=Counter(
            "schema_revisions_applied", "Alembic revisions applied by this process.", ["direction"],
            registry=REGISTRY),
        revision_seconds=Histogram(
            "schema_revision_duration_seconds", "Time to apply one Alembic revision (its transaction).",
            ["direction"], buckets=REVISION_SECONDS_BUCKETS, registry=REGISTRY),
        ddl_lock_waits=Counter(
            "schema_ddl_lock_waits", "DDL statements that hit lock_timeout and were retried after a back-off.",
            registry=REGISTRY),
    )


def ensure_registered() -> None:
    """Create the counters now: the unlabelled ones are exported at 0 from the first
    scrape on, before their first event (a rate() needs a first sample)."""
    _metrics()


def _never_fails(function: Callable[..., T]) -> Callable[..., T]:
    """Counting must not break what is counted: a failure is logged, and the event's
    argument (if any) is still returned so that callers can wrap a return value."""

    @functools.wraps(function)
    def safe(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - observability only
            log.warning("could not record the metric %s", function.__name__, exc_info=True)
            return args[0] if args else None

    return safe


@_never_fails
def batch_outcome(outcome: T) -> T:
    """A batch ran (runner.execute_batch); returns the outcome for `return batch_outcome(...)`.
    Also logged, with the run id, batch id and outcome as fields of LOG_FORMAT=json."""
    kind = outcome.kind
    _metrics().batch_outcomes.labels(kind).inc()
    again = f"; again in {outcome.retry_in:.1f}s" if kind in ("retry", "leased", "waiting") else ""
    # INFO even for a failed try: the run's status and --log carry it, and the scripts
    # (alembic.ini: WARNING) keep their one-line error; workers log INFO by default.
    log.info("batch %s of run %s: %s (%s rows)%s%s", outcome.batch_id, outcome.run_id, kind, outcome.rows,
            f": {outcome.error}" if outcome.error else "", again,
            extra={"run_id": outcome.run_id, "batch_id": outcome.batch_id, "outcome": kind, "rows": outcome.rows})
    return outcome


@_never_fails
def lease_taken_over(count: int = 1) -> int:
    """Batch leases whose holder vanished, taken over; returns `count`."""
    if count:
        _metrics().lease_takeovers.inc(count)
    return count


@_never_fails
def health_check_tripped(check: str) -> None:
    _metrics().health_check_trips.labels(check).inc()


@_never_fails
def recovery_dispatched(count: int) -> None:
    if count:
        _metrics().recovery_dispatched.inc(count)


@_never_fails
def revision_applied(seconds: float, *, upgrade: bool = True) -> None:
    direction = "upgrade" if upgrade else "downgrade"
    _metrics().revisions_applied.labels(direction).inc()
    _metrics().revision_seconds.labels(direction).observe(seconds)


@_never_fails
def ddl_lock_wait() -> None:
    _metrics().ddl_lock_waits.inc()


def revision_timer(then: Callable[..., None] | None = None) -> Callable[..., None]:
    """An Alembic `on_version_apply` callback (env.py) that records each revision and
    its time, from the previous revision (or from its own creation, just before the
    first one starts), then calls `then` (the caller's callback) with the same arguments."""
    previous = time.monotonic()

    def on_version_apply(*, ctx, step, **kwargs) -> None:
        nonlocal previous
        now = time.monotonic()
        if not step.is_stamp and not ctx.as_sql:  # an offline script applies nothing
            revision_applied(now - previous, upgrade=step.is_upgrade)
        previous = now
        if then is not None:
            then(ctx=ctx, step=step, **kwargs)

    return on_version_apply
