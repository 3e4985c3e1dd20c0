"""The engine's entry point for the CLI, the Celery tasks and the HTTP API.

One object bound to a database engine, the catalog and the timing settings; each
method is one short operation on the durable state, safe to call from any process.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.backfill import batches, coordinator, health, progress, runs
from backend.backfill.registry import Catalog, load_catalog
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.estimate import dry_run, window_plan
from backend.backfill.announce import Announcer
from backend.backfill.memory import ExecutorMemory
from backend.backfill.notify import Notifier, in_process_notifier
from backend.backfill.policy import RunPolicy
from backend.backfill.outcome import BatchOutcome, Outcome
from backend.backfill.runner import execute_batch
from backend.backfill.settings import EngineSettings
from backend.backfill.model import BatchError, IllegalTransition, Run, RunStatus, Transition
from backend.backfill.state import backfill_runs
from backend.config import Config
from backend.db import create_db_engine, write_transaction

Dispatch = Callable[[Iterable[int]], None]
log = logging.getLogger(__name__)


def check_health_check_names(catalog: Catalog, settings: EngineSettings) -> None:
    """Every health check named by the settings or a backfill exists (checked once the
    catalog's modules, which may register checks of their own, are imported)."""
    health.require_known(settings.health_checks, "BACKFILL_HEALTH_CHECKS")
    for backfill in catalog:
        if backfill.health_checks is not None:
            health.require_known(backfill.health_checks, f"backfill {backfill.name} health_checks")


def check_configuration(config: Config) -> None:
    """The start-up check of every entry point beyond Config.from_env: the backfill
    modules import, and the health checks they and the settings name exist.
    Raises SettingsError naming the setting."""
    check_health_check_names(load_catalog(config.backfill_modules), config.engine_settings)


class NoDryRun(ValueError):
    """A dry run asked of what cannot be rolled back (an index build, a validation)."""


class BackfillService:
    def __init__(self, engine: Engine, catalog: Catalog, settings: EngineSettings | None = None,
                 notifier: Notifier | None = None):
        """Without `settings`, the configuration's (Config.from_env), as every entry
        point reads it; the entry points pass their Config's (`from_config`).
        `notifier` receives the webhook notifications of the status changes this
        service announces (announce.py: after each of its operations)."""
        self.engine = engine
        self.catalog = catalog
        self.settings = settings if settings is not None else Config.from_env().engine_settings
        self.announcer = Announcer(catalog, notifier)
        self._backfill_of_run: dict[int, str] = {}  # a run's backfill never changes
        self.memory = ExecutorMemory()  # healthy answers and outages, between this executor's batches
        check_health_check_names(self.catalog, self.settings)

    @classmethod
    def from_config(cls, config: Config, engine: Engine | None = None,
                    notifier: Notifier | None = None) -> "BackfillService":
        """`notifier`: the workers' when a broker is configured (wiring.py); without
        one, this process's own thread when BACKFILL_NOTIFY_WEBHOOK_URL is set."""
        return cls(engine or create_db_engine(config.database_url), load_catalog(config.backfill_modules),
                   config.engine_settings, notifier or in_process_notifier(config.notify_webhook_urls))

    def announce(self) -> None:
        """Hooks and notifications of the status changes committed and not announced
        yet (announce.py); called after each operation below that may change a status.
        A database that cannot be reached now leaves them to the next call: they wait
        in backfill_transitions, and the operation itself succeeded."""
        try:
            self.announcer.announce(self.engine)
        except sa.exc.DBAPIError as exc:
            log.warning("status changes not announced yet (the next operation will): %s", exc.orig or exc)
        except Exception:  # the operation committed: its announcement must not undo its answer
            log.exception("announcing the status changes failed")

    # --- runs -------------------------------------------------------------------------
    def schedule(self, name: str, *, scheduled_by: str | None = None) -> int:
        """A pending run of `name`, or the id of its unfinished run if it has one."""
        backfill = self.catalog.get(name)
        with write_transaction(self.engine) as connection:
            active = [run for run in runs.list_runs(connection, name=name) if run.is_active]
            if active:
                return active[-1].id
            run_id = runs.create_run(connection, name, batch_size=backfill.batch_size,
                                     max_parallel=backfill.max_parallel, key_type=backfill.key_type,
                                     scheduled_by=scheduled_by)
        self.announce()
        return run_id

    def get_run(self, run_id: int) -> Run:
        with self.engine.connect() as connection:
            return runs.get_run(connection, run_id)

    def list_runs(self, *, status: str | None = None, name: str | None = None) -> list[Run]:
        with self.engine.connect() as connection:
            return runs.list_runs(connection, status=status, name=name)

    def unfinished_runs(self, only: Iterable[str] | None = None) -> list[Run]:
        wanted = set(only) if only else None
        return [run for run in self.list_runs() if run.is_active
                and (wanted is None or run.name in wanted)]

    def transition(self, run_id: int, target: str, *, actor: str = "engine", reason: str | None = None,
                   **values: Any) -> Run:
        with write_transaction(self.engine) as connection:  # reads the run, then writes it
            run = runs.transition(connection, run_id, target, actor=actor, reason=reason, **values)
        self.announce()
        return run

    def transitions(self, run_id: int) -> list[Transition]:
        with self.engine.connect() as connection:
            runs.get_run(connection, run_id)
            return runs.transitions(connection, run_id)

    def batch_errors(self, run_id: int) -> list[tuple[int, BatchError]]:
        """Every failed attempt of the run's batches, oldest first, with its batch's seq."""
        with self.engine.connect() as connection:
            errors = batches.errors_of_run(connection, run_id)
            seqs = batches.seqs_of(connection, sorted({error.batch_id for error in errors}))
        return [(seqs[error.batch_id], error) for error in errors]

    # --- controls: each takes effect at the next batch boundary -------------------------
    def pause(self, run_id: int, *, actor: str, reason: str | None = None) -> Run:
        """No new batch starts; batches in flight finish (they are never cut)."""
        return self.transition(run_id, RunStatus.PAUSED, actor=actor, reason=reason, wait_reason=None,
                               next_window_at=None)

    def resume(self, run_id: int, *, actor: str, dispatch: Dispatch | None = None) -> Run:
        """Continue a paused run from its durable cursor; with `dispatch`, hand out its
        batches now. (A pending run is started, a failed one retried: not resumed.)"""
        current = self.get_run(run_id).status
        if current != RunStatus.PAUSED:
            raise IllegalTransition(run_id, current, RunStatus.RUNNING, hint="only a paused run can be resumed")
        run = self.transition(run_id, RunStatus.RUNNING, actor=actor, reason="resumed")
        self._dispatch_now(run_id, dispatch)
        return run

    def cancel(self, run_id: int, *, actor: str, reason: str | None = None) -> Run:
        return self.transition(run_id, RunStatus.CANCELLED, actor=actor, reason=reason, wait_reason=None,
                               next_window_at=None)

    def retry_failed(self, run_id: int, *, actor: str = "engine", dispatch: Dispatch | None = None) -> Run:
        """failed -> running, its failed batches pending again with fresh attempts.
        Only a failed run: a pending, waiting or paused one has nothing to retry."""
        with self.engine.begin() as connection:
            current = runs.lock_run(connection, run_id).status
            if current != RunStatus.FAILED:
                raise IllegalTransition(run_id, current, RunStatus.RUNNING, hint="only a failed run can be retried")
            runs.transition(connection, run_id, RunStatus.RUNNING, actor=actor,
                            reason="retry the failed batches", finished_at=None, last_error=None)
            batches.put_failed_back(connection, run_id)
            runs.clear_failed_count(connection, run_id)
        self.announce()
        self._dispatch_now(run_id, dispatch)
        return self.get_run(run_id)

    def _dispatch_now(self, run_id: int, dispatch: Dispatch | None) -> None:
        if dispatch is not None and self.get_run(run_id).executor == "celery":
            ids = [*self.batches_to_run(run_id), *self.advance(run_id)]
            if ids:
                dispatch(ids)

    def start(self, run_id: int, *, executor: str) -> Run:
        run = coordinator.start_run(self.engine, self.catalog, run_id, executor=executor)
        self.announce()
        return run

    def snapshot(self, run_id: int) -> progress.Progress:
        with self.engine.connect() as connection:
            run = runs.get_run(connection, run_id)
            schedule = RunPolicy.of(self.catalog.get(run.name), self.settings).schedule \
                if run.name in self.catalog else None
            return progress.snapshot(connection, run_id, schedule)

    def dry_run(self, name: str, *, samples: int = 3):
        """Sample batches rolled back, the rows to do and the window plan; changes nothing."""
        backfill = self.catalog.get(name)
        if backfill.outside_transaction:
            raise NoDryRun(f"{name} is a schema job: its statement runs outside any transaction, so a dry run "
                           f"could not roll it back (--status shows the statement and its progress)")
        with self.engine.connect() as connection:
            report = dry_run(connection, backfill, samples=samples)
        seconds = report.seconds
        plan = window_plan(RunPolicy.of(backfill, self.settings).schedule, utcnow(), seconds) \
            if seconds is not None else None
        return report, plan

    # --- batches ----------------------------------------------------------------------
    def advance(self, run_id: int) -> list[int]:
        new_ids = coordinator.advance(self.engine, self.catalog, run_id, self.settings)
        self.announce()  # the run may have completed or failed
        return new_ids

    def policy(self, run_id: int) -> RunPolicy:
        """Asked after every batch: the run's backfill name is read once per process."""
        name = self._backfill_of_run.get(run_id)
        if name is None:
            name = self._backfill_of_run[run_id] = self.get_run(run_id).name
        return RunPolicy.of(self.catalog.get(name), self.settings)

    def wake_due(self, *, executor: str | None = None, run_id: int | None = None) -> list[int]:
        """Waiting runs whose window opened (or whose health back-off ended) run again.

        Each is looked at again under its row lock, in a transaction of its own: a run
        an operator paused or cancelled since the first look stays as they left it."""
        now = utcnow()
        query = sa.select(backfill_runs.c.id).where(
            backfill_runs.c.status == RunStatus.WAITING, backfill_runs.c.next_window_at <= now)
        if executor is not None:
            query = query.where(backfill_runs.c.executor == executor)
        if run_id is not None:
            query = query.where(backfill_runs.c.id == run_id)
        with self.engine.connect() as connection:
            due = connection.execute(query).scalars().all()
        woken = []
        for due_id in due:
            with write_transaction(self.engine) as connection:
                run = runs.lock_run(connection, due_id)
                next_window_at = as_utc(run.next_window_at)
                if run.status != RunStatus.WAITING or next_window_at is None or next_window_at > now:
                    continue
                runs.transition(connection, due_id, RunStatus.RUNNING, actor="scheduler",
                                reason=f"time to try again after: {run.wait_reason}",
                                wait_reason=None, next_window_at=None)
                woken.append(due_id)
        self.announce()
        return woken

    def execute(self, batch_id: int, claim_token: str | None = None, *, advance: bool = False) -> BatchOutcome:
        """Run one batch; with `advance`, a success also carves the next batches (in
        `outcome.next_batch_ids`), as `advance` would after it."""
        outcome = execute_batch(self.engine, self.catalog, batch_id, self.settings, claim_token, advance=advance,
                                memory=self.memory)
        if _may_have_moved_its_run(outcome):
            self.announce()  # after the batch's commit: a run it completed, failed or made wait
        return outcome

    def batches_to_run(self, run_id: int) -> list[int]:
        """Expired leases released, then every pending batch of the run."""
        coordinator.release_expired_leases(self.engine, run_id)
        return coordinator.dispatchable_batches(self.engine, run_id)

    # --- recovery (Celery beat) -------------------------------------------------------
    def recover(self, dispatch: Dispatch, *, executor: str = "celery") -> dict[int, int]:
        """Re-dispatch, from the durable state, what lost messages or dead workers
        left behind: expired leases, pending batches handed out long ago, and runs
        that nobody advanced. Returns {run_id: batches dispatched}."""
        with self.engine.connect() as connection:
            run_ids = connection.execute(
                sa.select(backfill_runs.c.id).where(
                    backfill_runs.c.status == RunStatus.RUNNING, backfill_runs.c.executor == executor
                )
            ).scalars().all()
        woken = self.wake_due(executor=executor)
        run_ids = sorted(set(run_ids) | set(woken))
        dispatched: dict[int, int] = {}
        for run_id in run_ids:
            coordinator.release_expired_leases(self.engine, run_id)
            stale = coordinator.dispatchable_batches(
                self.engine, run_id,
                older_than_seconds=None if run_id in woken else self.settings.redispatch_after_seconds,
            )
            fresh = self.advance(run_id)
            ids = [*stale, *fresh]
            if ids:
                dispatch(ids)
            dispatched[run_id] = len(ids)
        self.announce()  # also what processes that died before their claim left behind
        return dispatched


def _may_have_moved_its_run(outcome: BatchOutcome) -> bool:
    """Whether running the batch may have changed its run's status: failed for good
    (the run may fail), waiting (the run waits), or succeeded and advanced its run with
    nothing left to carve (the run may be complete; without `advance`, `advance` does
    that and announces). The other outcomes skip the announcer's query; a change they
    made all the same would be announced by the next operation."""
    return outcome.kind in (Outcome.FAILED, Outcome.WAITING) or (
        outcome.kind == Outcome.SUCCEEDED and outcome.next_batch_ids == ())
