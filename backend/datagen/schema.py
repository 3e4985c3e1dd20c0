"""What the generator may write, decided by reflecting the live database.

Later revisions add columns, so nothing here is taken from the ORM models. Columns
we know how to fill are written when present; a NOT NULL column that we do not know
and that has no server default would make every insert fail, so it stops the run
before anything is written, with a message naming it.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend.datagen.errors import DatagenError

# Every column the generator can fill, per table, in the order rows are built.
# Must match the tuples produced by backend.datagen.rows.
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "preferred_locale", "password_hash", "created_at", "updated_at", "email_normalized"),
    "products": ("id", "owner_id", "sku", "price_cents", "stock", "created_at", "updated_at"),
    "product_translations": ("id", "product_id", "locale", "name", "description", "slug"),
    "orders": ("id", "user_id", "status", "created_at", "updated_at", "total_cents"),
    "order_items": ("id", "order_id", "product_id", "quantity", "unit_price_cents"),
}
# Without these the rows cannot reference each other; any other known column is
# simply skipped when absent (slug, total_cents and email_normalized only exist after
# later revisions).
REQUIRED_COLUMNS = {
    "users": ("id",),
    "products": ("id", "owner_id", "price_cents"),
    "product_translations": ("id", "product_id", "locale"),
    "orders": ("id", "user_id"),
    "order_items": ("id", "order_id", "product_id", "unit_price_cents"),
}
TABLES = tuple(KNOWN_COLUMNS)


@dataclass(frozen=True)
class TargetSchema:
    """The columns to write per table (a subsequence of KNOWN_COLUMNS)."""

    columns: dict[str, tuple[str, ...]]

    def has(self, table: str, column: str) -> bool:
        return column in self.columns[table]


def inspect_target(connection: sa.Connection) -> TargetSchema:
    inspector = sa.inspect(connection)
    existing_tables = set(inspector.get_table_names())
    missing_tables = [name for name in TABLES if name not in existing_tables]
    if missing_tables:
        raise DatagenError(
            f"the database is not migrated (no {', '.join(missing_tables)} table): "
            "run `alembic upgrade head` first"
        )
    columns = {}
    for table in TABLES:
        reflected = {column["name"]: column for column in inspector.get_columns(table)}
        _refuse_unknown_required(table, reflected)
        columns[table] = _writable(table, reflected)
    return TargetSchema(columns)


def _refuse_unknown_required(table: str, reflected: dict[str, dict]) -> None:
    for name, column in reflected.items():
        if name in KNOWN_COLUMNS[table] or column.get("nullable", True):
            continue
        if column.get("default") is not None or column.get("computed") or column.get("identity"):
            continue
        raise DatagenError(
            f"column {table}.{name} is NOT NULL without a server default and backend.datagen "
            "does not know how to fill it (add it to backend/datagen/schema.py and rows.py)"
        )


def _writable(table: str, reflected: dict[str, dict]) -> tuple[str, ...]:
    missing = [name for name in REQUIRED_COLUMNS[table] if name not in reflected]
    if missing:
        raise DatagenError(
            f"table {table} has no column(s) {', '.join(missing)}: is this the shop database?"
        )
    return tuple(name for name in KNOWN_COLUMNS[table] if name in reflected)
