"""`run_migrations.py --batched`: revisions and backfills in the real-life order.

Applies the revisions; where one requires a backfill to be finished (its gate
raises BackfillNotFinished), completes that backfill in batches and retries; at
head, runs the remaining unfinished backfills. In-process without a dispatcher, on
the workers with one (run_migrations.py hands in the Celery dispatcher when
CELERY_BROKER_URL is set).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit
from typing import Any, Callable, Iterable, Protocol

from backend.backfill.dispatcher import Dispatcher, SendBatches
from backend.backfill.notify import Notifier
from backend.backfill.inprocess import run_in_process
from backend.migrations.backfill_ops import BackfillNotFinished
from backend.migrations.index_jobs import IndexNotBuilt
from backend.backfill.progress import Progress
from backend.backfill.service import BackfillService
from backend.backfill.stall import STALL_SECONDS, BatchActivity, StallWatch
from backend.backfill.stall import batch_activity as read_batch_activity
from backend.backfill.summary import RunSummary, summarize
from backend.backfill.model import RunStatus
from backend.backfill.clock import utcnow
from backend.config import Config
from backend.db import create_db_engine
from backend.migrations.alembic_api import current_revisions, upgrade
from backend.migrations.errors import BatchedMigrationFailed
from backend.migrations.upgrade import Revision
from backend.text import escape_controls


class ProgressDisplay(Protocol):
    """Where --batched shows what it does (backend/cli/progress_display.py on the
    command line, a timing wrapper in the rehearsal)."""

    def message(self, text: str) -> None: ...
    def update(self, progress: Progress) -> None: ...
    def close(self) -> None: ...


# Rows written by an old app version during a rolling deploy can need a second run;
# a gate still closed after this many is a backfill that leaves rows behind.
MAX_PASSES_PER_GATE = 3


# Following a run on the workers: after BACKFILL_STALL_SECONDS (STALL_SECONDS by
# default) without a batch claimed or finished, although batches are pending and none
# is held by a live worker, say so (the rule lives in backend.backfill.stall, shared
# with the API and status page).


@dataclass
class BatchedOptions:
    only: tuple[str, ...] = ()
    no_wait: bool = False
    dispatcher: Dispatcher | None = None  # the workers' (run there), or None (run here)
    broker_url: str | None = None  # named when the workers do not take the batches
    notifier: Notifier | None = None  # the runs' webhook notifications (None: from the Config)
    poll_interval: float = 1.0
    stall_seconds: float | None = None  # None: the settings' (BACKFILL_STALL_SECONDS)


@dataclass
class BatchedResult:
    applied_from: tuple[str, ...]
    at: tuple[str, ...]
    finished: list[Progress] = field(default_factory=list)
    dispatched: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # in-process runs left waiting (--no-wait)
    summaries: list[RunSummary] = field(default_factory=list)  # each run that ended, as it ended


def migrate_batched(config: Config, options: BatchedOptions, display: ProgressDisplay,
                    on_applied: Callable[[Any], None] = lambda revision: None,
                    on_lock_wait: Callable[[str], None] | None = None) -> BatchedResult:
    """`on_lock_wait` hears of each retried lock timeout (default: a display message)."""
    url = config.database_url
    engine = create_db_engine(url)
    service = BackfillService.from_config(config, engine=engine, notifier=options.notifier)
    result = BatchedResult(applied_from=current_revisions(url), at=())
    try:
        passes: dict[str | None, int] = {}
        while True:
            try:
                upgrade(url, "head", on_version_apply=_reporter(on_applied),
                        on_lock_wait=on_lock_wait or display.message)
                break
            except BackfillNotFinished as gate:
                passes[gate.revision] = passes.get(gate.revision, 0) + 1
                if passes[gate.revision] > MAX_PASSES_PER_GATE:
                    # Its backfills keep completing while rows still need work: their
                    # statement misses rows, or an old app version keeps writing them.
                    raise BatchedMigrationFailed(
                        f"{gate.revision} still waits after its backfills ran {MAX_PASSES_PER_GATE} times: "
                        f"{'; '.join(gate.details)}") from None
                what = "schema job" if isinstance(gate, IndexNotBuilt) else "backfill"
                display.message(f"{gate.revision} waits for {what} {', '.join(gate.names)}")
                gated = [_run_for_gate(service, name) for name in gate.names]
                finished = _finish_all(service, gated, options, display, result, at_gate=True)
                if not finished:
                    if options.no_wait:  # every other backfill that can run now goes too
                        others = [run.id for run in service.unfinished_runs(options.only or None)
                                  if run.id not in gated]
                        _finish_all(service, others, options, display, result)
                    display.message(f"run this command again to continue past {gate.revision}")
                    result.at = current_revisions(url)
                    return result
        result.at = current_revisions(url)
        run_ids = [run.id for run in service.unfinished_runs(options.only or None)]
        _finish_all(service, run_ids, options, display, result)
        return result
    finally:
        display.close()
        engine.dispose()


def _run_for_gate(service: BackfillService, name: str) -> int:
    """The backfill's unfinished run, or a new one. Not over a failed run: its failed
    batches would fail the same way in a new run, after rescanning every key; the
    operator retries them (or cancels the run to start over)."""
    latest = service.list_runs(name=name)[-1:]
    if latest and latest[0].status == RunStatus.FAILED:
        run = latest[0]
        raise BatchedMigrationFailed(
            f"backfill {name} (run {run.id}) failed: {run.last_error or 'see --log'}; retry its failed batches "
            f"with: python run_migrations.py --retry {run.id} (or --cancel {run.id} to start a new run)")
    return service.schedule(name)


def _reporter(on_applied):
    def record(*, step, **_kwargs) -> None:
        if step.is_upgrade and not step.is_stamp:
            on_applied(Revision.from_script(step.up_revision))

    return record


def _finish_all(service: BackfillService, run_ids: Iterable[int], options: BatchedOptions,
                display: ProgressDisplay, result: BatchedResult, *, at_gate: bool = False) -> bool:
    """Run each backfill to its end, saying what each did; False when some were left
    to continue later (dispatched with --no-wait, or waiting for a window with
    --no-wait). `at_gate`: a revision waits for these (what to do after a cancel)."""
    finished_all = True
    for run_id in run_ids:
        run = service.get_run(run_id)
        if run.status == RunStatus.PAUSED:
            raise BatchedMigrationFailed(
                f"backfill {run.name} (run {run_id}) is paused; resume it with: "
                f"python run_migrations.py --resume {run_id}")
        if options.dispatcher is not None:
            _start_on_workers(service, run_id, options.dispatcher)
            result.dispatched.append(run_id)
            if options.no_wait:
                display.message(_dispatched_line(service, run_id, run.name))
                finished_all = False
                continue
            progress = _follow(service, run_id, display, options.poll_interval, send=options.dispatcher.send,
                               stall_seconds=options.stall_seconds or service.settings.stall_seconds,
                               broker_url=options.broker_url)
        else:
            progress = run_in_process(service, run_id, on_progress=display.update, wait=not options.no_wait,
                                      on_wait=lambda p, until: display.message(_waiting_line(p, until)),
                                      on_message=display.message)
            if progress.status == RunStatus.WAITING:
                display.message(f"{_waiting_line(progress, progress.next_window_at)}; "
                                "run `python run_migrations.py --batched` again then to continue")
                result.waiting.append(run_id)
                finished_all = False
                continue
        result.finished.append(progress)
        with service.engine.connect() as connection:
            summary = summarize(connection, run_id)
        result.summaries.append(summary)
        display.message(summary.line())
        if progress.status == RunStatus.CANCELLED:
            raise BatchedMigrationFailed(_cancelled_line(service, run_id, progress.name, at_gate))
        if progress.status != RunStatus.COMPLETED:
            reason = progress.last_error or f"it is {progress.status}"
            raise BatchedMigrationFailed(f"backfill {progress.name} (run {run_id}) {progress.status}: {reason}")
    return finished_all


def _cancelled_line(service: BackfillService, run_id: int, name: str, at_gate: bool) -> str:
    """Who cancelled the run and why (its transition log), and how to go on."""
    cancel = next((t for t in reversed(service.transitions(run_id)) if t.to_status == RunStatus.CANCELLED), None)
    who = f" by {escape_controls(cancel.actor)}" if cancel else ""
    why = f" ({escape_controls(cancel.reason)})" if cancel and cancel.reason else " (no reason given)"
    command = "python run_migrations.py --batched" if at_gate else f"python run_migrations.py --rerun {name}"
    return (f"backfill {name} (run {run_id}) was cancelled{who}{why}; `{command}` starts a new run over "
            f"the rows still pending")


def _dispatched_line(service: BackfillService, run_id: int, name: str) -> str:
    """--no-wait with the workers: dispatched, and when a run outside its windows continues."""
    line = f"backfill {name} (run {run_id}) dispatched to the workers"
    schedule = service.policy(run_id).schedule
    now = utcnow()
    if schedule.is_open(now):
        return line
    opens = schedule.next_opening(now)
    when = f"{opens:%Y-%m-%d %H:%M} UTC" if opens else "the next opening"
    return f"{line}; it waits outside its maintenance windows ({schedule.text}): the workers continue it at {when}"


def _waiting_line(progress: Progress, until) -> str:
    when = f"{until:%Y-%m-%d %H:%M} UTC" if until else "later"
    return f"backfill {progress.name} (run {progress.run_id}) waits: {progress.wait_reason}; continues at {when}"


def _start_on_workers(service: BackfillService, run_id: int, dispatcher: Dispatcher) -> None:
    """Mark the run started for the workers in the database, then tell them. Should the
    message be lost (Redis restarted before a worker took it), the run is already
    running on the Celery executor, and the recovery (beat, or _follow) hands out its
    batches from the database."""
    service.start(run_id, executor="celery")
    dispatcher.start(run_id)


def _follow(service: BackfillService, run_id: int, display: ProgressDisplay, poll_interval: float, *,
            send: SendBatches, stall_seconds: float = STALL_SECONDS, broker_url: str | None = None) -> Progress:
    """Watch a run executed by the workers; also re-dispatch what a lost message left
    behind, so that following works even before a beat process is started. Says once
    when the run has stalled (StallWatch), and again when it moves on."""
    last_recovery = time.monotonic()
    announced = None
    stall = StallWatch(stall_seconds)
    while True:
        progress = service.snapshot(run_id)
        display.update(progress)
        if progress.status not in (RunStatus.RUNNING, RunStatus.PENDING, RunStatus.WAITING):
            return progress
        if progress.status == RunStatus.WAITING and progress.next_window_at != announced:
            announced = progress.next_window_at  # the workers' windows and health say when
            display.message(_waiting_line(progress, announced))
        change = stall.observe(progress.status, batch_activity(service, run_id))
        if change == "stalled":
            display.message(_stalled_line(progress, stall, broker_url))
        elif change == "moving":
            display.message(f"backfill {progress.name} (run {run_id}): workers are taking its batches again")
        if time.monotonic() - last_recovery >= service.settings.redispatch_after_seconds:
            service.recover(send)
            last_recovery = time.monotonic()
        time.sleep(poll_interval)


def batch_activity(service: BackfillService, run_id: int) -> BatchActivity:
    with service.engine.connect() as connection:
        return read_batch_activity(connection, run_id)


def _stalled_line(progress: Progress, stall: StallWatch, broker_url: str | None) -> str:
    where = f" against {_without_password(broker_url)}" if broker_url else ""
    pending = f"{stall.waiting} batch(es) pending" if stall.waiting else "none carved yet"
    return (f"backfill {progress.name} (run {progress.run_id}): no worker has taken a batch in "
            f"{stall.seconds:g} s: is `celery -A worker worker` running{where}? ({pending}; they wait in the "
            f"database; still following)")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
