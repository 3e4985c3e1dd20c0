"""`--rehearse` and `--backup DIR` for run_migrations.py, as one decorator so that
the script's own options and body stay as they are:

    @click.command()
    @click.option(...)            # the script's options
    @safety_options
    @one_line_errors
    def main(database_url, ...): ...

--rehearse replaces the command: it works on a copy and changes nothing.
--backup DIR runs first; the command runs only once the backup is written.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import click

from backend.cli.configuration import load_config
from backend.cli.errors import one_line_errors
from backend.cli.progress_display import ProgressDisplay
from backend.cli.rehearsal_report import report_lines
from backend.migrations.safety.backup import report_backup
from backend.migrations.safety.rehearsal import rehearse


# The options of run_migrations.py that migrate: a backup goes with these only.
MIGRATION_OPTIONS = ("--batched", "--only", "--no-wait", "--in-process")


def safety_options(command: Callable) -> Callable:
    @click.option("--rehearse", is_flag=True,
                  help="Rehearse on a throwaway copy: upgrade (backfills in batches), downgrade, upgrade again; "
                       "report times, locks, rows/s; change nothing.")
    @click.option("--backup", "backup_dir", metavar="DIR", type=click.Path(path_type=Path),
                  help="Back up the database into DIR first (pg_dump -Fc / SQLite backup API) and print the "
                       "restore command; if that fails, nothing is migrated. Alone or with --batched.")
    @functools.wraps(command)
    def wrapper(*args, rehearse: bool, backup_dir: Path | None, **options):
        others = sorted(f"--{name.replace('_', '-')}" for name, value in options.items()
                        if value not in (None, False, ()) and name != "database_url")
        if rehearse:
            if others or backup_dir:
                raise click.UsageError(f"--rehearse goes alone (with --database-url at most), not with "
                                       f"{', '.join(others + ['--backup'] * bool(backup_dir))}")
            return _run(_rehearse, options.get("database_url"))
        if backup_dir is not None:
            unrelated = [name for name in others if name not in MIGRATION_OPTIONS]
            if unrelated:
                raise click.UsageError(f"--backup goes with a migration (alone or with --batched), "
                                       f"not with {', '.join(unrelated)}")
            _run(_backup, options.get("database_url"), backup_dir)
        return command(*args, **options)

    return wrapper


@one_line_errors
def _run(action: Callable, *args) -> None:
    action(*args)


def _rehearse(database_url: str | None) -> None:
    for line in report_lines(rehearse(load_config(database_url), display=ProgressDisplay)):
        click.echo(line)


def _backup(database_url: str | None, directory: Path) -> None:
    report_backup(load_config(database_url).database_url, directory)
