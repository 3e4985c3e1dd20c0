"""What a revision helper asks of the migration it runs in: the database's dialect,
whether it writes a script (`alembic upgrade --sql`) instead of running statements,
and how to quote a name for it."""
from __future__ import annotations

from alembic import op


def dialect_name() -> str:
    return op.get_context().dialect.name


def is_offline() -> bool:
    """`alembic upgrade --sql`: no connection to read from, only a script to write."""
    return op.get_context().as_sql


def quote(name: str) -> str:
    return op.get_context().dialect.identifier_preparer.quote(name)
