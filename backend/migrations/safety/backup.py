"""`run_migrations.py --backup DIR`: a backup written before anything is applied.

PostgreSQL: `pg_dump -Fc` into DIR/<database>-<UTC timestamp>.dump; SQLite: the
backup API into DIR/<name>-<UTC timestamp>.db. The command that restores it is
printed. If the backup cannot be written, the caller migrates nothing.
"""
from __future__ import annotations

import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import click

from backend.migrations.errors import CommandFailed
from backend.migrations.safety.databases import (Target, libpq_uri, pg_tool, run_tool, sqlite_backup,
                                             sqlite_restore_command, utc_stamp)


@dataclass(frozen=True)
class Backup:
    path: Path | None  # None: nothing to back up (a SQLite file that does not exist yet)
    restore_command: str | None
    size: int = 0


def write_backup(database_url: str, directory: Path) -> Backup:
    """Raises CommandFailed("backup failed, nothing was migrated: ...") on any problem."""
    try:
        return _write(Target.from_url(database_url), directory)
    except CommandFailed as exc:
        raise CommandFailed(f"backup failed, nothing was migrated: {exc}") from None


def pg_restore_command(dump: Path, uri: str) -> str:
    """The shell command that puts the database back as it was when `dump` was taken:
    the public schema emptied (tables the migration added go too, which
    `pg_restore --clean` would leave), then the dump, in one transaction, so that a
    failed restore changes nothing."""
    return (f"{{ echo 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;'; "
            f"pg_restore --no-owner --file=- {shlex.quote(str(dump))}; }} "
            f"| psql --quiet --no-psqlrc -v ON_ERROR_STOP=1 --single-transaction --dbname {shlex.quote(uri)}")


def _write(target: Target, directory: Path) -> Backup:
    if target.kind not in ("sqlite", "postgresql"):
        raise CommandFailed(f"cannot back up a {target.kind} database")
    if target.kind == "sqlite" and not target.sqlite_path.exists():
        return Backup(None, None)
    directory = _writable_directory(directory)
    suffix = ".db" if target.kind == "sqlite" else ".dump"
    path = _free_path(directory, f"{target.name}-{utc_stamp()}", suffix)
    try:
        if target.kind == "sqlite":
            sqlite_backup(target.sqlite_path, path)
            restore = sqlite_restore_command(path, target.sqlite_path)
        else:
            run_tool([pg_tool("pg_dump"), "--format=custom", "--file", str(path), "--dbname", libpq_uri(target)],
                     target, "pg_dump")
            restore = pg_restore_command(path, libpq_uri(target))
    except BaseException as exc:
        path.unlink(missing_ok=True)  # no half-written backup left to be trusted later
        if isinstance(exc, (OSError, sqlite3.Error)):
            raise CommandFailed(f"cannot write {path}: {exc}") from None
        raise
    if target.url.password and target.kind == "postgresql":
        restore = f"PGPASSWORD=... {restore}"
    return Backup(path, restore, path.stat().st_size)


def _writable_directory(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandFailed(f"cannot create directory {directory}: {exc.strerror or exc}") from None
    return directory.resolve()


def _free_path(directory: Path, stem: str, suffix: str) -> Path:
    """A file name nobody uses yet, created now (two backups in one second get -2, -3)."""
    for attempt in range(1, 1000):
        path = directory / f"{stem}{'' if attempt == 1 else f'-{attempt}'}{suffix}"
        try:
            path.touch(exist_ok=False)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise CommandFailed(f"cannot write to {directory}: {exc.strerror or exc}") from None
    raise CommandFailed(f"too many backups named {stem} in {directory}")


def report_backup(database_url: str, directory: Path) -> Backup:
    backup = write_backup(database_url, directory)
    if backup.path is None:
        click.echo(f"no backup: {Target.from_url(database_url).shown()} does not exist yet (a new database)")
    else:
        click.echo(f"backup written: {backup.path} ({backup.size:,} bytes)")
        click.echo(f"restore it with: {backup.restore_command}")
    return backup
