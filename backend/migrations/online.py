"""Online versions of the schema steps that lock a big table, for use in revisions.

    from backend.migrations.online import add_unique_constraint, create_index, set_not_null

    def upgrade():
        create_index("ix_users_email_normalized", "users", ["email_normalized"])
        set_not_null("orders", "total_cents", existing_type=sa.BigInteger())

On PostgreSQL each step takes the lock that stops the shop (ACCESS EXCLUSIVE, or
SHARE for a plain index build) only for an instant, and does its long part (index
build, validation scan) under a lock that lets reads and writes go on:

| step                  | long part, shop keeps going                 | instant, under lock_timeout          |
| --------------------- | ------------------------------------------- | ------------------------------------ |
| create_index          | CREATE INDEX CONCURRENTLY                    | -                                    |
| add_unique_constraint | CREATE UNIQUE INDEX CONCURRENTLY             | ADD CONSTRAINT ... UNIQUE USING INDEX |
| set_not_null          | VALIDATE a CHECK (col IS NOT NULL) NOT VALID | ADD the CHECK; SET NOT NULL (no scan: PostgreSQL 12+ trusts the check); DROP it |
| add_foreign_key       | VALIDATE CONSTRAINT                          | ADD CONSTRAINT ... NOT VALID         |

The long parts run in an autocommit block (it commits what the revision did
before them) with no lock_timeout: their locks queue no shop statement, so waiting
for a long transaction there costs time, not sales. Each step can be run again
after a failed try (an INVALID index left by a failed build is dropped and built
again), which is what the lock-timeout retries of env.py need.

On SQLite each is the plain operation in batch mode (a development database is small).
In offline mode (`alembic upgrade --sql`) they render the same SQL a DBA can review.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

from backend.migrations import context, run_config


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(context.quote(column) for column in columns)


@contextlib.contextmanager
def lock_timeout(seconds: float | None) -> Iterator[None]:
    """Run the block's statements with another lock_timeout (None: wait as long as it
    takes), then go back to the migration's own. For a revision that must wait longer
    than the default and says so, or a step whose lock blocks no shop statement."""
    if context.dialect_name() != "postgresql":
        yield
        return
    previous = _current_lock_timeout()
    op.execute(f"SET lock_timeout = '{0 if seconds is None else max(1, round(seconds * 1000))}ms'")
    try:
        yield
    finally:
        op.execute(f"SET lock_timeout = '{previous}'")


def _current_lock_timeout() -> str:
    """Offline: what env.py SETs at the script's start, from the same settings."""
    if context.is_offline():
        return f"{run_config.current().lock_retry_settings.timeout_ms}ms"
    return op.get_bind().exec_driver_sql("SHOW lock_timeout").scalar_one()


@contextlib.contextmanager
def outside_transaction() -> Iterator[None]:
    """PostgreSQL refuses CONCURRENTLY inside a transaction block; these locks queue no
    shop statement, so they may wait for as long as they must."""
    with op.get_context().autocommit_block(), lock_timeout(None):
        yield


# --- columns -------------------------------------------------------------------------

def add_column(table: str, column: sa.Column) -> None:
    """ADD COLUMN (an instant lock for a nullable column or a constant default), which
    a second try after a later step of the revision failed finds already there."""
    if context.dialect_name() != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(column)
        return
    op.add_column(table, column, if_not_exists=True)


# --- indexes -------------------------------------------------------------------------

def create_index(name: str, table: str, columns: Sequence[str], *, unique: bool = False,
                 where: str | None = None) -> None:
    """CREATE [UNIQUE] INDEX CONCURRENTLY; an INVALID index of that name (a build
    that failed or was killed) is dropped first; a valid one is kept."""
    if context.dialect_name() != "postgresql":
        op.create_index(name, table, list(columns), unique=unique,
                        sqlite_where=sa.text(where) if where else None)
        return
    state = _index_state(name)
    if state == "valid":
        return
    with outside_transaction():
        if state == "invalid":
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {context.quote(name)}")
        predicate = f" WHERE {where}" if where else ""
        op.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY IF NOT EXISTS {context.quote(name)} "
                   f"ON {context.quote(table)} ({_columns(columns)}){predicate}")


def drop_index(name: str, table: str) -> None:
    """DROP INDEX CONCURRENTLY: the shop's queries that use it are not stopped."""
    if context.dialect_name() != "postgresql":
        op.drop_index(name, table_name=table)
        return
    with outside_transaction():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {context.quote(name)}")


def _index_state(name: str) -> str | None:
    """'valid', 'invalid' or None (absent); offline, the script builds it as new."""
    if context.is_offline():
        return None
    valid = op.get_bind().execute(sa.text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"), {"name": name}).scalar()
    return None if valid is None else ("valid" if valid else "invalid")


# --- constraints ---------------------------------------------------------------------

def add_unique_constraint(name: str, table: str, columns: Sequence[str]) -> None:
    """A unique index built concurrently, then attached as the constraint (an instant
    ACCESS EXCLUSIVE lock under lock_timeout): the constraint the models declare,
    without the build under ACCESS EXCLUSIVE that ADD CONSTRAINT UNIQUE would do."""
    if context.dialect_name() != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_unique_constraint(name, list(columns))
        return
    if _constraint_exists(table, name):
        return
    create_index(name, table, columns, unique=True)
    op.execute(f"ALTER TABLE {context.quote(table)} ADD CONSTRAINT {context.quote(name)} UNIQUE USING INDEX {context.quote(name)}")


def set_not_null(table: str, column: str, *, existing_type: sa.types.TypeEngine) -> None:
    """SET NOT NULL without its full scan under ACCESS EXCLUSIVE: a CHECK added NOT
    VALID, validated while the shop writes, lets PostgreSQL 12+ skip the scan."""
    if context.dialect_name() != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, existing_type=existing_type, nullable=False)
        return
    check = context.quote(_check_name(table, column))
    op.execute(f"ALTER TABLE {context.quote(table)} DROP CONSTRAINT IF EXISTS {check}")  # left by a failed try
    op.execute(f"ALTER TABLE {context.quote(table)} ADD CONSTRAINT {check} CHECK ({context.quote(column)} IS NOT NULL) NOT VALID")
    with outside_transaction():
        op.execute(f"ALTER TABLE {context.quote(table)} VALIDATE CONSTRAINT {check}")
    op.alter_column(table, column, existing_type=existing_type, nullable=False)
    op.execute(f"ALTER TABLE {context.quote(table)} DROP CONSTRAINT {check}")


def add_foreign_key(name: str, source: str, referent: str, local_columns: Sequence[str],
                    remote_columns: Sequence[str], *, ondelete: str | None = None) -> None:
    """ADD CONSTRAINT ... NOT VALID (instant, under lock_timeout: it blocks writes to
    both tables while it waits), then VALIDATE, which scans under a lock that lets
    reads and writes go on."""
    if context.dialect_name() != "postgresql":
        with op.batch_alter_table(source) as batch_op:
            batch_op.create_foreign_key(name, referent, list(local_columns), list(remote_columns), ondelete=ondelete)
        return
    if not _constraint_exists(source, name):
        op.create_foreign_key(name, source, referent, list(local_columns), list(remote_columns),
                              ondelete=ondelete, postgresql_not_valid=True)
    with outside_transaction():
        op.execute(f"ALTER TABLE {context.quote(source)} VALIDATE CONSTRAINT {context.quote(name)}")


def _check_name(table: str, column: str) -> str:
    return f"ck_{table}_{column}_not_null"[:63]


def _constraint_exists(table: str, name: str) -> bool:
    if context.is_offline():
        return False
    return op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = to_regclass(:table)"),
        {"name": name, "table": table}).first() is not None
