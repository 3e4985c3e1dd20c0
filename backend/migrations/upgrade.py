"""Upgrading a database to head through Alembic, and what is pending.

Every upgrade goes through `alembic_api.upgrade`, i.e. through env.py and its schema
lock: several processes started at once apply each revision exactly once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import click
from alembic.script import Script, ScriptDirectory

from backend.migrations import alembic_api
from backend.migrations.errors import CommandFailed


@dataclass(frozen=True)
class Revision:
    id: str
    message: str

    @classmethod
    def from_script(cls, script: Script) -> "Revision":
        """The title (the docstring's first paragraph) on one line, however it is wrapped."""
        return cls(script.revision, " ".join((script.doc or "").split()))

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
        lines = [f"current: {names(self.current)}", f"head:    {names(self.heads)}"]
        if not self.pending:
            return lines + ["up to date: no pending revisions"]
        return lines + [f"pending ({len(self.pending)}):"] + [f"  {revision}" for revision in self.pending]


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
        raise CommandFailed(f"several heads ({names(heads)}): run `python create_migration.py merge` first")
    return heads[0]


def ensure_database_at_head(database_url: str) -> None:
    """Autogenerate compares models with the database: an outdated database would put
    already-written revisions into the new one."""
    head = single_head()
    current = alembic_api.current_revisions(database_url)
    if current != (head,):
        raise CommandFailed(
            f"database is at {names(current)}, head is {head}: run `python run_migrations.py` first"
        )


def names(revisions: Iterable[str]) -> str:
    """Revision ids for a message; no revision at all is Alembic's `base`."""
    return ", ".join(revisions) or "base"
