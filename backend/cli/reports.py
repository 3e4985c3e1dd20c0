"""What the entry scripts print: each `report_*` does one mode of a script and
echoes its outcome (the scripts only parse options and call these)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import click
from sqlalchemy.engine import make_url

from backend.backfill.dispatcher import Dispatcher
from backend.backfill.notify import Notifier
from backend.backfill.registry import load_catalog
from backend.cli.progress_display import ProgressDisplay
from backend.cli.runs_table import runs_table
from backend.config import Config
from backend.migrations.batched import BatchedOptions, migrate_batched
from backend.migrations.errors import CommandFailed
from backend.migrations.revisions import NewRevision
from backend.migrations.upgrade import SchemaStatus, UpgradeResult, names, schema_status, upgrade_to_head


def report_upgrade(database_url: str) -> UpgradeResult:
    result = upgrade_to_head(database_url, on_applied=lambda revision: click.echo(f"applied {revision}"))
    click.echo(result.summary())
    return result


def report_status(database_url: str) -> SchemaStatus:
    _require_existing_sqlite_file(database_url)
    status = schema_status(database_url)
    for line in status.lines():
        click.echo(line)
    return status


def _require_existing_sqlite_file(database_url: str) -> None:
    """--status changes nothing: it must not create the SQLite file (and its folders)
    that a mistyped path names."""
    url = make_url(database_url)
    path = url.database
    if url.get_backend_name() == "sqlite" and path and path != ":memory:" and not path.startswith("file:") \
            and not Path(path).exists():
        raise CommandFailed(f"no SQLite database at {path} (python run_migrations.py creates it)")


def report_batched(config: Config, *, only: Iterable[str] = (), no_wait: bool = False,
                   dispatcher: Dispatcher | None = None, notifier: Notifier | None = None) -> None:
    """Schema and backfills to head, in batches, with a live progress display: on the
    workers with a dispatcher, in this process without one. `notifier`: the webhook
    notifications' (wiring.transition_notifier)."""
    broker = config.celery_broker_url if dispatcher is not None else None
    _check_backfillnames(config, only)
    options = BatchedOptions(only=tuple(only), no_wait=no_wait, dispatcher=dispatcher, broker_url=broker,
                             notifier=notifier)
    display = ProgressDisplay()
    result = migrate_batched(config, options, display,
                             on_applied=lambda revision: display.message(f"applied {revision}"))
    where = "on the Celery workers" if broker else "in this process"
    done = [p.name for p in result.finished]
    if done:
        click.echo(f"backfills completed {where}: {', '.join(done)}")
    elif not result.dispatched and not result.waiting:
        click.echo("no backfill to run")
    click.echo(f"schema at {names(result.at)}")


def report_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def report_backfill_runs(config: Config, only: Iterable[str] = ()) -> None:
    _check_backfillnames(config, only)
    for line in runs_table(config, only):
        click.echo(line)


def _check_backfillnames(config: Config, names: Iterable[str]) -> None:
    catalog = load_catalog(config.backfill_modules)
    for name in names:
        catalog.get(name)  # UnknownBackfill names the known ones


def report_new_revision(revision: NewRevision, *, expect_operations: bool) -> None:
    click.echo(f"created {revision.path}")
    if expect_operations and not revision.has_operations:
        click.echo(
            "warning: no model changes detected, the revision is empty: edit it or delete it", err=True
        )


