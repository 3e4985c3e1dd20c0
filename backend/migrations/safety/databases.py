"""Copies and dumps of the target database, for the rehearsal and the backup.

PostgreSQL: `CREATE DATABASE copy TEMPLATE source` when nobody else is connected
to the source (a file-level copy, fast), otherwise `pg_dump | pg_restore` into a
new database (an MVCC snapshot, the source keeps working); `pg_dump -Fc` for
backups. The client tools get the URL without its password (the password goes in
PGPASSWORD, never on a command line that `ps` shows).

SQLite: the sqlite3 backup API, which copies a consistent snapshot page by page
(WAL included) and only reads the source.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from backend.config import normalize_database_url
from backend.migrations.errors import CommandFailed

PG_NAME_LIMIT = 63  # bytes in a PostgreSQL identifier


@dataclass(frozen=True)
class Target:
    """The database a URL names, as the copy and backup code needs it."""
    url: URL

    @classmethod
    def from_url(cls, database_url: str) -> "Target":
        return cls(make_url(normalize_database_url(database_url)))

    @property
    def kind(self) -> str:
        return self.url.get_backend_name()

    @property
    def name(self) -> str:
        if self.kind == "sqlite":
            return self.sqlite_path.stem
        return self.url.database or ""

    @property
    def sqlite_path(self) -> Path:
        database = self.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise CommandFailed(f"{self.url.render_as_string()} is not a SQLite file: nothing to copy")
        return Path(database).resolve()

    def shown(self) -> str:
        return str(self.sqlite_path) if self.kind == "sqlite" else self.url.render_as_string(hide_password=True)

    def with_database(self, database: str) -> "Target":
        return Target(self.url.set(database=database))


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


# --- SQLite ----------------------------------------------------------------------------

def sqlite_backup(source: Path, destination: Path) -> None:
    """Copy a consistent snapshot of `source` into `destination` (created or overwritten).

    The source is opened as a plain reader: no pragma, no write; closing it as the
    last connection removes the empty -wal/-shm files SQLite created for the read,
    so the source file is left byte for byte as it was."""
    if not source.is_file():
        raise CommandFailed(f"SQLite database {source} does not exist")
    reader = sqlite3.connect(source)
    try:
        reader.execute("PRAGMA query_only = ON")
        writer = sqlite3.connect(destination)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()


def sqlite_restore_command(backup: Path, database: Path) -> str:
    """A command that writes the backup back into the database through SQLite (safe
    with the database's WAL file, unlike copying the file over it)."""
    code = (f"import sqlite3; sqlite3.connect({json.dumps(str(backup))})"
            f".backup(sqlite3.connect({json.dumps(str(database))}))")
    return f"python3 -c {shlex.quote(code)}"


# --- PostgreSQL ------------------------------------------------------------------------

def pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CommandFailed(f"{name} is not installed (or not on PATH): install the PostgreSQL client tools, "
                            f"the same major version as the server or newer")
    return path


def libpq_uri(target: Target) -> str:
    """The URL as libpq reads it: no SQLAlchemy driver name, no password."""
    url = target.url.set(drivername="postgresql", password=None)
    return url.render_as_string(hide_password=False)


def libpq_env(target: Target) -> dict[str, str]:
    env = dict(os.environ)
    if target.url.password:
        env["PGPASSWORD"] = str(target.url.password)
    return env


def run_tool(command: list[str], target: Target, what: str) -> None:
    result = subprocess.run(command, env=libpq_env(target), capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandFailed(f"{what} failed: {_last_line(result.stderr) or f'exit code {result.returncode}'}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _admin_engine(target: Target) -> sa.Engine:
    """A connection to another database of the same server, for CREATE/DROP DATABASE."""
    maintenance = "template1" if target.url.database == "postgres" else "postgres"
    return sa.create_engine(target.with_database(maintenance).url, isolation_level="AUTOCOMMIT",
                            poolclass=sa.pool.NullPool)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy_name(source: str) -> str:
    suffix = f"_rehearsal_{utc_stamp().lower()}_{uuid.uuid4().hex[:6]}"
    return source.encode()[: PG_NAME_LIMIT - len(suffix)].decode(errors="ignore") + suffix


def _other_sessions(admin: sa.Connection, database: str) -> int:
    return admin.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": database}).scalar_one()


def _pg_copy(source: Target, copy: Target) -> str:
    """Create `copy` from `source`; returns how."""
    engine = _admin_engine(source)
    try:
        with engine.connect() as admin:
            if _other_sessions(admin, source.name) == 0:
                try:
                    admin.execute(sa.text(f"CREATE DATABASE {_quote(copy.name)} TEMPLATE {_quote(source.name)}"))
                    return "CREATE DATABASE ... TEMPLATE (nobody was connected to the source)"
                except sa.exc.DBAPIError as exc:
                    if getattr(exc.orig, "pgcode", None) != "55006":  # object_in_use: someone connected meanwhile
                        raise
            admin.execute(sa.text(f"CREATE DATABASE {_quote(copy.name)}"))
    finally:
        engine.dispose()
    _dump_restore(source, copy)
    return "pg_dump | pg_restore (the source is in use)"


def _dump_restore(source: Target, copy: Target) -> None:
    dump = subprocess.Popen([pg_tool("pg_dump"), "--format=custom", "--dbname", libpq_uri(source)],
                            env=libpq_env(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    restore = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                              "--dbname", libpq_uri(copy)],
                             env=libpq_env(copy), stdin=dump.stdout, capture_output=True, text=True)
    dump.stdout.close()  # type: ignore[union-attr]
    dump_error = dump.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
    if dump.wait() != 0:
        raise CommandFailed(f"pg_dump of {source.name} failed: {_last_line(dump_error)}")
    if restore.returncode != 0:
        raise CommandFailed(f"pg_restore into {copy.name} failed: {_last_line(restore.stderr)}")


def _admin_execute(target: Target, statement: str) -> None:
    """One statement (CREATE/DROP DATABASE) from another database of target's server."""
    engine = _admin_engine(target)
    try:
        with engine.connect() as admin:
            admin.execute(sa.text(statement))
    finally:
        engine.dispose()


def _pg_drop(copy: Target) -> None:
    _admin_execute(copy, f"DROP DATABASE IF EXISTS {_quote(copy.name)} WITH (FORCE)")


def create_scratch_database(server_url: str, prefix: str) -> str:
    """A new empty PostgreSQL database `<prefix>_<random>` on the server `server_url`
    points at; returns its URL (drop it with drop_scratch_database). Shared by the
    test suite and the benchmark."""
    scratch = Target.from_url(server_url).with_database(f"{prefix}_{uuid.uuid4().hex[:12]}")
    _admin_execute(scratch, f"CREATE DATABASE {_quote(scratch.name)}")
    return scratch.url.render_as_string(hide_password=False)


def drop_scratch_database(url: str) -> None:
    """Drop the PostgreSQL database `url` names, closing its sessions (WITH (FORCE))."""
    _pg_drop(Target.from_url(url))


# --- a throwaway copy ------------------------------------------------------------------

@dataclass(frozen=True)
class Copy:
    url: str
    name: str
    method: str


@contextlib.contextmanager
def throwaway_copy(database_url: str) -> Iterator[Copy]:
    """A copy of the database, dropped on the way out whatever happened."""
    source = Target.from_url(database_url)
    if source.kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="rehearsal-") as directory:
            path = Path(directory) / f"{source.name}-rehearsal.db"
            sqlite_backup(source.sqlite_path, path)
            yield Copy(f"sqlite:///{path}", str(path), "the SQLite backup API")
        return
    if source.kind != "postgresql":
        raise CommandFailed(f"cannot copy a {source.kind} database (PostgreSQL and SQLite only)")
    copy = source.with_database(_copy_name(source.name))
    try:
        method = _pg_copy(source, copy)
        yield Copy(copy.url.render_as_string(hide_password=False), copy.name, method)
    finally:
        _pg_drop(copy)
