"""The one-line failures of the migration tools, and the one-line description of any
exception they raise (the scripts print it instead of a traceback)."""
from __future__ import annotations

import traceback
from pathlib import Path

from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.exc import ArgumentError, DBAPIError

from backend.backfill.registry import UnknownBackfill
from backend.backfill.runs import RunNotFound
from backend.backfill.service import NoDryRun
from backend.backfill.settings import SettingsError
from backend.backfill.model import IllegalTransition
from backend.config import ConfigError
from backend.migrations.lock_retries import LockRetriesExhausted
from backend.text import escape_controls


class CommandFailed(Exception):
    """An expected failure; its message is the whole one-line explanation."""


class BatchedMigrationFailed(Exception):
    """A backfill did not complete; the message is the one line to show."""


def error_message(exc: Exception) -> str:
    """One line, safe for a terminal: a stored error may carry control characters."""
    return escape_controls(" ".join(_describe(exc).split()))


def _describe(exc: Exception) -> str:
    if isinstance(exc, CommandFailed):
        return str(exc)
    if isinstance(exc, LockRetriesExhausted):
        return f"a revision could not take its locks: {exc}"
    if isinstance(exc, (BatchedMigrationFailed, UnknownBackfill, RunNotFound, IllegalTransition, NoDryRun)):
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
