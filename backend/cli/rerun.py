"""`run_migrations.py --rerun NAME`: a new run of a backfill whose last run finished
(after a fix in its code, or to take up the rows a cancelled run left), then the
same as `--batched --only NAME`.

A new run walks the whole table and changes the rows its pending filter selects
(every row when it has none). It is a deliberate act on live data: on a terminal it
asks first; without one it needs --yes.
"""
from __future__ import annotations

import sys
from typing import Callable

import click

from backend.backfill import runs
from backend.cli.controls import cli_actor, open_service
from backend.config import Config
from backend.db import write_transaction
from backend.migrations.errors import CommandFailed

NO_TERMINAL = "--rerun asks for confirmation on a terminal; add --yes to rerun without one"


def schedule_rerun(config: Config, name: str, *, yes: bool,
                   confirm: Callable[[str], bool] | None = None) -> list[str]:
    """Schedules the new run (refused while a run of `name` is unfinished) and says so.
    `confirm` asks the operator (default: click.confirm, on a terminal only)."""
    service = open_service(config)
    try:
        backfill = service.catalog.get(name)  # UnknownBackfill names the known ones
        unfinished = [run for run in service.list_runs(name=name) if run.is_active]
        if unfinished:
            run = unfinished[-1]
            raise CommandFailed(
                f"backfill {name} has an unfinished run {run.id} ({run.status}): continue it with "
                f"python run_migrations.py --batched --only {name}, or cancel it first with --cancel {run.id}")
        scope = ("the rows its pending filter selects" if backfill.pending_filter() is not None
                 else f"every row of {backfill.table.name} (it has no pending filter)")
        question = f"Start a new run of backfill {name} over {scope}?"
        if not yes:
            if confirm is None and not sys.stdin.isatty():
                raise CommandFailed(NO_TERMINAL)
            if not (confirm or _ask)(question):
                raise CommandFailed(f"not confirmed: no run of {name} was scheduled")
        with write_transaction(service.engine) as connection:
            run_id = runs.create_run(connection, name, batch_size=backfill.batch_size,
                                     max_parallel=backfill.max_parallel, key_type=backfill.key_type,
                                     actor=cli_actor())
        return [f"run {run_id} ({name}) scheduled over {scope}"]
    finally:
        service.engine.dispose()


def _ask(question: str) -> bool:
    return click.confirm(question, default=False)
