"""`run_migrations.py --rehearse`: the pending migration, tried on a throwaway copy.

On a copy of the target database (see databases.py) the rehearsal
1. upgrades to head with the backfills run in batches in this process (exactly
   `run_migrations.py --batched` without a broker),
2. downgrades to the revision the database started at,
3. upgrades again,
then drops the copy, whatever happened. It reports per revision the time taken, the
lock_timeout it ran under, the lock waits it retried and its strongest lock (and any
lock held longer), then the bound: how long at most the upgrade stalls the shop;
per backfill its rows/s and the maintenance windows it would need. The real database
is only read (to copy it).

Backfills run at full speed on the copy: maintenance windows, pauses between
batches and health checks protect production load, which a copy does not have.
The window estimate applies the real windows and pauses to the measured rate.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import sqlalchemy as sa
from alembic import command

from backend.backfill import policy as policy_module
from backend.backfill.clock import utcnow
from backend.backfill.estimate import window_plan
from backend.backfill.policy import RunPolicy
from backend.backfill.progress import Progress
from backend.backfill.registry import load_catalog
from backend.backfill.state import backfill_batches
from backend.backfill.windows import parse_windows
from backend.backfill.summary import duration
from backend.config import Config
from backend.db import create_db_engine
from backend.interrupts import sigterm_unwinds
from backend.migrations import alembic_api
from backend.migrations.batched import BatchedOptions, ProgressDisplay, migrate_batched
from backend.migrations.errors import CommandFailed, error_message
from backend.migrations.upgrade import single_head
from backend.migrations.safety.databases import Copy, Target, throwaway_copy
from backend.migrations.safety.locks import LockHeld, LockSampler, longest, longest_blocking, worst
from backend.migrations.safety.timing import RevisionRun, TransactionClock

SAMPLING_INTERVAL = 0.002


@dataclass(frozen=True)
class RevisionTiming:
    revision: str
    seconds: float
    transactions: int
    lock: LockHeld | None  # the worst lock: stops the most traffic, then held longest
    longest_lock: LockHeld | None = None  # when another lock was held longer
    blocking: LockHeld | None = None  # of the locks that stop reads or writes, the one held longest
    sampling_gap: float | None = None  # the longest time between two pg_locks samples during it
    lock_timeouts: frozenset = frozenset()  # ms (0: none) its statements in transactions ran under
    autocommit_lock_timeouts: frozenset = frozenset()  # the same for its autocommit steps
    lock_waits: tuple[str, ...] = ()  # the retried lock timeouts (env.py's on_lock_wait messages)
    locks: tuple[LockHeld, ...] = ()  # every table lock seen


@dataclass(frozen=True)
class BackfillTiming:
    name: str
    rows: int
    changed: int
    seconds: float
    batches: int
    longest_batch_ms: int | None
    window: str  # the estimate for the real database, in words

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.seconds > 0 and self.rows else None


@dataclass
class Phase:
    title: str
    seconds: float = 0.0
    revisions: list[RevisionTiming] = field(default_factory=list)
    backfills: list[BackfillTiming] = field(default_factory=list)


@dataclass
class Rehearsal:
    source: str
    kind: str
    copy: Copy
    copy_seconds: float
    start: tuple[str, ...]
    head: str
    phases: list[Phase] = field(default_factory=list)
    lock_method: str = ""


def rehearse(config: Config, display: Callable[[], ProgressDisplay]) -> Rehearsal:
    """`display` makes the progress display of each upgrade phase."""
    source = Target.from_url(config.database_url)
    head = single_head()
    with sigterm_unwinds():
        began = time.monotonic()
        with throwaway_copy(config.database_url) as copy:
            start = alembic_api.current_revisions(copy.url)
            rehearsal = Rehearsal(source.shown(), source.kind, copy, time.monotonic() - began, start, head)
            if start == (head,):
                return rehearsal
            if len(start) > 1:
                raise CommandFailed(f"the database is at several revisions ({', '.join(start)}): "
                                    "a rehearsal needs a single starting revision")
            _run_phases(rehearsal, dataclasses.replace(config, database_url=copy.url, celery_broker_url=None),
                        display)
            return rehearsal


def _run_phases(rehearsal: Rehearsal, config: Config, display: Callable[[], ProgressDisplay]) -> None:
    target = rehearsal.start[0] if rehearsal.start else "base"
    with TransactionClock(config.database_url) as clock, _lock_sampler(rehearsal.kind, config.database_url) as sampler:
        phases: list[tuple[str, Callable[[Phase], None]]] = [
            ("upgrade to head, backfills in batches in this process", lambda p: _upgrade(config, clock, display, p)),
            (f"downgrade to {target}", lambda p: _downgrade(config.database_url, target, clock)),
            ("upgrade to head again", lambda p: _upgrade(config, clock, display, p)),
        ]
        for title, action in phases:
            phase = Phase(title)
            began = time.monotonic()
            try:
                action(phase)
            except Exception as exc:
                raise CommandFailed(
                    f"rehearsal failed during {title}: {error_message(exc)} (the copy was dropped; "
                    f"{rehearsal.source} is unchanged)") from None
            phase.seconds = time.monotonic() - began
            phase.revisions = [_revision_timing(run, sampler) for run in clock.take_runs()]
            rehearsal.phases.append(phase)
        if sampler is None:
            rehearsal.lock_method = ("SQLite locks the whole database for writing during each revision's "
                                     "transaction: the lock shown is that transaction's duration")
        elif sampler.error:
            rehearsal.lock_method = f"pg_locks sampling failed ({sampler.error}): no lock figures"
        else:
            rehearsal.lock_method = (
                f"pg_locks sampled every {SAMPLING_INTERVAL * 1000:.0f} ms ({sampler.samples:,} samples) from a "
                f"second connection; shown per revision: the lock that blocks the most traffic, held from its "
                f"first sighting to the commit, and any lock held longer; the revision's time bounds every lock; "
                f"the stall bound counts from the sample before the first sighting; SHARE UPDATE EXCLUSIVE "
                f"(CONCURRENTLY, VALIDATE) and weaker block neither reads nor writes")


@contextlib.contextmanager
def _lock_sampler(kind: str, database_url: str) -> Iterator[LockSampler | None]:
    if kind != "postgresql":
        yield None
        return
    with LockSampler(database_url, interval=SAMPLING_INTERVAL) as sampler:
        yield sampler


def _revision_timing(run: RevisionRun, sampler: LockSampler | None) -> RevisionTiming:
    name = ", ".join(run.revisions)
    if sampler is None:
        held = LockHeld("(whole database)", "write lock", max(t.seconds for t in run.transactions))
        return RevisionTiming(name, run.seconds, len(run.transactions), held)
    locks = [held for transaction in run.transactions for held in sampler.locks(transaction)]
    strongest, held_longest = worst(locks), longest(locks)
    if strongest is None or held_longest is None or held_longest.seconds <= strongest.seconds + SAMPLING_INTERVAL:
        held_longest = None  # the same lock, or no longer within what sampling can tell
    began, ended = run.transactions[0].began, run.transactions[-1].ended
    return RevisionTiming(name, run.seconds, len(run.transactions), strongest, held_longest,
                          longest_blocking(locks), sampler.longest_gap(began, ended),
                          frozenset(run.lock_timeouts()), frozenset(run.lock_timeouts(autocommit=True)),
                          tuple(run.lock_waits), tuple(locks))


# --- the phases -------------------------------------------------------------------------

class _TimingDisplay:
    """The usual progress display, also noting when each backfill run was first and
    last seen, to time it."""

    def __init__(self, inner: ProgressDisplay):
        self.inner = inner
        self.first_seen: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}

    def message(self, text: str) -> None:
        self.inner.message(text)

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        self.first_seen.setdefault(progress.run_id, now)
        self.last_seen[progress.run_id] = now
        self.inner.update(progress)

    def close(self) -> None:
        self.inner.close()


def _upgrade(config: Config, clock: TransactionClock, display: Callable[[], ProgressDisplay], phase: Phase) -> None:
    timing = _TimingDisplay(display())

    def lock_wait(message: str) -> None:
        clock.lock_wait(message)
        timing.message(message)

    with _full_speed():
        result = migrate_batched(config, BatchedOptions(broker_url=None), timing,
                                 on_applied=lambda revision: clock.revision_applied(revision.id),
                                 on_lock_wait=lock_wait)
    if result.at != (single_head(),):
        raise CommandFailed(f"the upgrade stopped at {', '.join(result.at) or 'base'}")
    phase.backfills = [_backfill_timing(config, progress, timing) for progress in result.finished]


def _downgrade(database_url: str, target: str, clock: TransactionClock) -> None:
    cfg = alembic_api.alembic_config(database_url)
    cfg.attributes["on_version_apply"] = lambda *, step, **_kw: clock.revision_applied(step.up_revision_id)
    cfg.attributes["on_lock_wait"] = clock.lock_wait
    command.downgrade(cfg, target)


def _backfill_timing(config: Config, progress: Progress, timing: _TimingDisplay) -> BackfillTiming:
    batches_table = backfill_batches.c
    engine = create_db_engine(config.database_url)
    try:
        with engine.connect() as connection:
            batches, longest, first_start, last_end = connection.execute(
                sa.select(sa.func.count(), sa.func.max(batches_table.duration_ms),
                          sa.func.min(batches_table.started_at), sa.func.max(batches_table.finished_at))
                .where(batches_table.run_id == progress.run_id)
            ).one()
    finally:
        engine.dispose()
    if first_start is not None and last_end is not None:
        seconds = (last_end - first_start).total_seconds()  # first batch start to last batch end
    else:  # no batch (nothing to do): from the first progress report to the last
        seconds = timing.last_seen.get(progress.run_id, 0.0) - timing.first_seen.get(progress.run_id, 0.0)
    return BackfillTiming(progress.name, progress.rows_scanned, progress.rows_done, seconds, int(batches),
                          int(longest) if longest is not None else None,
                          _window_estimate(config, progress.name, seconds, int(batches)))


# --- backfills at full speed, and the estimate for the real database ----------------------

@contextlib.contextmanager
def _full_speed() -> Iterator[None]:
    """Backfill policies without windows, pauses or health checks, for the copy only."""
    policy_class = policy_module.RunPolicy
    declared = policy_class.__dict__.get("of")
    if declared is None:  # the engine changed: run with its real pacing
        yield
        return
    real = policy_class.of

    def unpaced(backfill, settings):
        return dataclasses.replace(real(backfill, settings), schedule=parse_windows(""), pause_seconds=0.0,
                                   health_checks=())

    policy_class.of = staticmethod(unpaced)
    try:
        yield
    finally:
        policy_class.of = declared


def _window_estimate(config: Config, name: str, seconds: float, batches: int) -> str:
    """How long the backfill needs on the real database, with its real pauses and windows."""
    policy = RunPolicy.of(load_catalog(config.backfill_modules).get(name), config.engine_settings)
    needed = seconds + batches * policy.pause_seconds
    plan = window_plan(policy.schedule, utcnow(), needed)
    duration = f"about {duration_text(needed)}"
    if policy.pause_seconds:
        duration += f" with its {policy.pause_seconds:g} s pauses"
    if plan is None:
        return f"{duration}, at any time (no maintenance window)"
    if plan.finish_at is None:
        return f"{duration}: more than {plan.windows} maintenance windows"
    return (f"{duration}: {plan.windows} maintenance window{'s' if plan.windows != 1 else ''} "
            f"({policy.schedule.text}), done around {plan.finish_at:%Y-%m-%d %H:%M} UTC if started now")


def duration_text(seconds: float) -> str:
    """A rehearsal times short steps: hundredths under a minute, else as a run's summary."""
    return f"{seconds:.2f} s" if seconds < 60 else duration(seconds)
