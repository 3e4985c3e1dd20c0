"""What the entry scripts (run.py, run_migrations.py, create_migration.py) do.

The scripts only parse options and call these functions, so that a new mode is one
more function here rather than logic spread over three files. Every upgrade goes
through `alembic_api.upgrade`, i.e. through env.py and its schema lock: several
processes started at once apply each revision exactly once.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import click
from alembic import command
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from backend.config import Config, ConfigError, normalize_database_url
from backend.migrations import alembic_api
from backend.cli import controls

# Alembic needs a URL in its config even for commands that never connect
# (an empty revision, a merge); this one is never opened.
_NO_DATABASE = "sqlite://"
DEFAULT_MERGE_MESSAGE = "merge heads"


class CommandFailed(Exception):
    """An expected failure; its message is the whole one-line explanation."""


@dataclass(frozen=True)
class Revision:
    id: str
    message: str

    @classmethod
    def from_script(cls, script: Script) -> "Revision":
        return cls(script.revision, script.doc or "")

    def __str__(self) -> str:
        return f"{self.id}: {self.message}" if self.message else self.id


@dataclass(frozen=True)
class UpgradeResult:
    applied: tuple[Revision, ...]
    head: str

    def summary(self) -> str:
        return f"now at head ({self.head})" if self.applied else f"already at head ({self.head})"


@dataclass(frozen=True)
class SchemaStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[Revision, ...]

    def lines(self) -> list[str]:
        lines = [f"current: {_names(self.current)}", f"head:    {_names(self.heads)}"]
        if not self.pending:
            return lines + ["up to date: no pending revisions"]
        return lines + [f"pending ({len(self.pending)}):"] + [f"  {revision}" for revision in self.pending]


@dataclass(frozen=True)
class NewRevision:
    path: Path
    has_operations: bool


# --- configuration -------------------------------------------------------------------

def load_config(database_url: str | None = None) -> Config:
    """The app's configuration (validated even when only the URL is used, so that the
    scripts and the app fail on the same bad settings), with an optional URL override."""
    from backend.backfill.service import check_configuration

    config = Config.from_env()
    check_configuration(config)
    if not database_url:
        return config
    return dataclasses.replace(config, database_url=normalize_database_url(database_url))


def resolve_database_url(database_url: str | None = None) -> str:
    return load_config(database_url).database_url


def ensure_port_free(host: str, port: int) -> None:
    """Werkzeug would report a busy port on two lines, and only after we migrated."""
    try:
        family, kind, _proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Werkzeug's server does
            probe.bind(address)
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# --- upgrade and status --------------------------------------------------------------

def upgrade_to_head(database_url: str, on_applied: Callable[[Revision], None] = lambda revision: None,
                    on_lock_wait: Callable[[str], None] | None = None) -> UpgradeResult:
    """Apply the pending revisions; report only those this process applied (another
    process holding the schema lock may have applied them first). `on_applied` hears
    of each one as it is done, so that a later failure does not hide them;
    `on_lock_wait` of each lock timeout that is retried (default: a line on stderr)."""
    head = single_head()
    applied: list[Revision] = []

    def record(*, step, **_kwargs) -> None:
        if step.is_upgrade and not step.is_stamp:
            applied.append(Revision.from_script(step.up_revision))
            on_applied(applied[-1])

    alembic_api.upgrade(database_url, "head", on_version_apply=record,
                        on_lock_wait=on_lock_wait or (lambda message: click.echo(message, err=True)))
    return UpgradeResult(tuple(applied), head)


def schema_status(database_url: str) -> SchemaStatus:
    script = alembic_api.script_directory()
    current = alembic_api.current_revisions(database_url)
    return SchemaStatus(current, tuple(script.get_heads()), pending_revisions(script, current))


def pending_revisions(script: ScriptDirectory, current: Iterable[str]) -> tuple[Revision, ...]:
    """Revisions not yet applied to a database at `current`, oldest first."""
    done = {rev.revision for rev in script.iterate_revisions(tuple(current), "base")} if current else set()
    in_order = reversed(list(script.walk_revisions()))
    return tuple(Revision.from_script(rev) for rev in in_order if rev.revision not in done)


def single_head() -> str:
    heads = alembic_api.head_revisions()
    if len(heads) != 1:
        if not heads:
            raise CommandFailed("there are no revisions in alembic/versions/")
        raise CommandFailed(f"several heads ({_names(heads)}): run `python create_migration.py merge` first")
    return heads[0]


def ensure_database_at_head(database_url: str) -> None:
    """Autogenerate compares models with the database: an outdated database would put
    already-written revisions into the new one."""
    head = single_head()
    current = alembic_api.current_revisions(database_url)
    if current != (head,):
        raise CommandFailed(
            f"database is at {_names(current)}, head is {head}: run `python run_migrations.py` first"
        )


# --- new revisions -------------------------------------------------------------------

def autogenerate_revision(message: str, database_url: str) -> NewRevision:
    """A revision holding the differences between the models and the database."""
    _check_message(message)
    ensure_database_at_head(database_url)
    found: list[bool] = []

    def inspect(_context, _revision, directives) -> None:
        found.append(not directives[0].upgrade_ops.is_empty())

    script = command.revision(
        _revision_config(database_url), message, autogenerate=True, process_revision_directives=inspect
    )
    return NewRevision(Path(script.path), has_operations=any(found))


def create_empty_revision(message: str) -> NewRevision:
    """A blank revision to fill by hand; needs no database."""
    _check_message(message)
    script = command.revision(_revision_config(_NO_DATABASE), message)
    return NewRevision(Path(script.path), has_operations=False)


def merge_heads(message: str | None = None) -> NewRevision:
    """A merge revision joining all current heads (branches from parallel work)."""
    heads = alembic_api.head_revisions()
    if len(heads) < 2:
        raise CommandFailed(f"nothing to merge: there is only one head ({_names(heads)})")
    script = command.merge(_revision_config(_NO_DATABASE), "heads", message=message or DEFAULT_MERGE_MESSAGE)
    return NewRevision(Path(script.path), has_operations=False)


def _revision_config(database_url: str):
    """Alembic's own "Generating <path> ... done" would repeat the line we print."""
    cfg = alembic_api.alembic_config(database_url)
    cfg.cmd_opts = argparse.Namespace(quiet=True, x=[])
    return cfg


def _check_message(message: str) -> None:
    if not message.strip():
        raise CommandFailed("the revision message is empty: describe the change with -m")


# --- reporting, shared by the scripts ------------------------------------------------

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
                   in_process: bool = False) -> None:
    """Schema and backfills to head, in batches, with a live progress display."""
    from backend.migrations.batched import BatchedOptions, migrate_batched
    from backend.cli.progress_display import ProgressDisplay

    broker = None if in_process else config.celery_broker_url
    _check_backfill_names(config, only)
    options = BatchedOptions(only=tuple(only), no_wait=no_wait, broker_url=broker)
    display = ProgressDisplay()
    result = migrate_batched(config, options, display,
                             on_applied=lambda revision: display.message(f"applied {revision}"))
    where = "on the Celery workers" if broker else "in this process"
    done = [p.name for p in result.finished]
    if done:
        click.echo(f"backfills completed {where}: {', '.join(done)}")
    elif not result.dispatched and not result.waiting:
        click.echo("no backfill to run")
    click.echo(f"schema at {_names(result.at)}")


def report_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def report_backfill_runs(config: Config, only: Iterable[str] = ()) -> None:
    from backend.cli.runs_table import runs_table

    _check_backfill_names(config, only)
    for line in runs_table(config, only):
        click.echo(line)


def _check_backfill_names(config: Config, names: Iterable[str]) -> None:
    from backend.backfill.registry import load_catalog

    catalog = load_catalog(config.backfill_modules)
    for name in names:
        catalog.get(name)  # UnknownBackfill names the known ones


def report_new_revision(revision: NewRevision, *, expect_operations: bool) -> None:
    click.echo(f"created {revision.path}")
    if expect_operations and not revision.has_operations:
        click.echo(
            "warning: no model changes detected, the revision is empty: edit it or delete it", err=True
        )


def _names(revisions: Iterable[str]) -> str:
    return ", ".join(revisions) or "base"


# --- errors --------------------------------------------------------------------------

def one_line_errors(func: Callable) -> Callable:
    """Turn any exception into click's one-line `Error: ...` on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise click.ClickException(error_message(exc)) from None

    return wrapper


def error_message(exc: Exception) -> str:
    return " ".join(_describe(exc).split())


def _describe(exc: Exception) -> str:
    if isinstance(exc, CommandFailed):
        return str(exc)
    from backend.backfill.registry import UnknownBackfill
    from backend.backfill.runs import RunNotFound
    from backend.backfill.settings import SettingsError
    from backend.backfill.state import IllegalTransition
    from backend.migrations.batched import BatchedMigrationFailed
    from backend.migrations.lock_retries import LockRetriesExhausted

    if isinstance(exc, LockRetriesExhausted):
        return f"a revision could not take its locks: {exc}"
    if isinstance(exc, (BatchedMigrationFailed, UnknownBackfill, RunNotFound, IllegalTransition)):
        return str(exc).strip('"')
    if isinstance(exc, SettingsError):
        return f"configuration error: {exc}"
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}"
    if isinstance(exc, (CommandError, RevisionError)):
        return f"alembic: {exc}"
    if isinstance(exc, DBAPIError):
        return f"database error: {exc.orig if exc.orig is not None else exc}"
    if isinstance(exc, ArgumentError):
        return f"invalid database URL or option: {exc}"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    if isinstance(exc, ModuleNotFoundError) and "sqlalchemy" in Path(frame.filename).parts:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the project installs psycopg2.
        return f"the database URL needs a driver that is not installed ({exc}); for PostgreSQL write postgresql+psycopg2://..."
    # A bug (often in a revision file): name where it happened instead of a traceback.
    return f"unexpected {type(exc).__name__}: {exc} (at {frame.filename}:{frame.lineno})"
