"""`run_migrations.py --pause/--resume/--cancel/--retry/--log/--dry-run`: the run
controls on the command line, over the engine's API (the HTTP API calls the same)."""
from __future__ import annotations

import getpass

from backend.backfill import controls
from backend.backfill.dispatcher import Dispatcher
from backend.backfill.notify import Notifier
from backend.backfill.runs import RunNotFound
from backend.backfill.service import BackfillService
from backend.backfill.summary import duration
from backend.backfill.model import BatchError, RunStatus
from backend.config import Config
from backend.db import create_db_engine
from backend.shop.validation import clean_text
from backend.text import escape_controls


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def open_service(config: Config, notifier: Notifier | None = None) -> BackfillService:
    return BackfillService.from_config(config, engine=create_db_engine(config.database_url), notifier=notifier)


REASON_MAX_LENGTH = controls.REASON_MAX_LENGTH


def is_storable_reason(reason: str) -> bool:
    """Short enough, and text the database can store (argv may carry a NUL-free but
    undecodable byte as a lone surrogate)."""
    return len(reason) <= REASON_MAX_LENGTH and clean_text(reason) is not None


MAX_RUN_ID = 2**63 - 1  # the largest id the run table's BIGINT (and SQLite's INTEGER) holds


def resolve_run(service: BackfillService, ref: str) -> int:
    """A run id, or a backfill name meaning its latest run."""
    if ref.isascii() and ref.isdigit():
        run_id = int(ref)
        if run_id > MAX_RUN_ID:
            raise RunNotFound(run_id)
        service.get_run(run_id)  # RunNotFound if unknown
        return run_id
    service.catalog.get(ref)  # UnknownBackfill names the known ones
    found = service.list_runs(name=ref)
    if not found:
        raise RunNotFound(ref)
    return found[-1].id


def control(config: Config, action: str, ref: str, reason: str | None = None,
            dispatcher: Dispatcher | None = None, notifier: Notifier | None = None) -> list[str]:
    """Apply the control named `action` (backend/backfill/controls.py) to the run `ref`.
    With a dispatcher (a broker is configured), a resumed or retried Celery run's
    batches go to the workers at once; `notifier` sends its webhook notification."""
    chosen = controls.get(action)
    service = open_service(config, notifier)
    try:
        run_id = resolve_run(service, ref)
        run = chosen.apply(service, run_id, actor=cli_actor(), reason=reason,
                           dispatch=dispatcher.send if dispatcher is not None else None)
        lines = [f"run {run_id} ({run.name}) is now {run.status}"]
        if chosen.target == RunStatus.RUNNING and run.executor != "celery":
            lines.append("continue it here with: python run_migrations.py --batched --only " + run.name)
        return lines
    finally:
        service.engine.dispose()


def transition_log(config: Config, ref: str) -> list[str]:
    service = open_service(config)
    try:
        run_id = resolve_run(service, ref)
        lines = [f"run {run_id}:"]
        for t in service.transitions(run_id):
            when = t.at.strftime("%Y-%m-%d %H:%M:%S") if t.at else "?"
            # Stored text reaches the operator's terminal: control characters (an ESC
            # sequence, a right-to-left override) are shown escaped, never interpreted.
            reason = f" ({escape_controls(t.reason)})" if t.reason else ""
            actor = escape_controls(t.actor)
            lines.append(f"  {when}  {t.from_status or '-':>9} -> {t.to_status:<9} by {actor}{reason}")
        return lines + batch_error_lines(service.batch_errors(run_id))
    finally:
        service.engine.dispose()


def batch_error_lines(errors: list[tuple[int, BatchError]]) -> list[str]:
    """Each failed attempt of the run's batches, oldest first: batch seq, attempt,
    error class and the message's first line (escaped, as the reasons are)."""
    if not errors:
        return []
    lines = ["failed attempts:"]
    for seq, error in errors:
        when = error.at.strftime("%Y-%m-%d %H:%M:%S") if error.at else "?"
        first_line = (error.message.splitlines() or [""])[0]
        lines.append(f"  {when}  batch {seq} attempt {error.attempt}: {escape_controls(error.error_class)}: "
                     f"{escape_controls(first_line)}")
    return lines


def dry_run(config: Config, name: str) -> list[str]:
    service = open_service(config)
    try:
        report, plan = service.dry_run(name)
        rows = f"{report.rows_to_do:,}" if report.rows_exact else f"~{report.rows_to_do:,} (planner estimate)"
        lines = [f"{name}: {rows} rows to do; nothing was changed (sample batches rolled back)"]
        if report.rows_to_do == 0:
            lines.append("nothing to do: the pending filter finds no row")
            return lines
        if report.rows_per_second is None:
            lines.append("no sample batch could be measured (empty table?)")
            return lines
        lines.append(f"measured {report.sample_rows:,} rows in {report.sample_batches} batches of "
                     f"{report.batch_size:,}: {report.rows_per_second:,.0f} rows/s")
        lines.append(f"expected duration: {_duration(report.seconds)}")
        if plan is None:
            lines.append("maintenance windows: none configured, it can run at any time")
        elif plan.finish_at is None:
            lines.append(f"maintenance windows: more than {plan.windows:,} windows")
        else:
            lines.append(f"maintenance windows: {plan.windows}, from {plan.first_start:%Y-%m-%d %H:%M} UTC, "
                         f"done around {plan.finish_at:%Y-%m-%d %H:%M} UTC")
        return lines
    finally:
        service.engine.dispose()


def _duration(seconds: float) -> str:
    """0m 42s rather than 42.0s: an estimate, in whole seconds."""
    seconds = round(seconds)
    return duration(seconds) if seconds >= 60 else f"0m {seconds:02d}s"
