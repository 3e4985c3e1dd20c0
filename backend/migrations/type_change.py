"""A column's type changed online (integer -> bigint above all), in three revisions.

    # expand (release N): shadow column, sync trigger, the copy scheduled
    start_type_change("order_items", "unit_price_cents", sa.BigInteger(), revision=revision)
    # contract (release N+1, behind the copy's gate): the columns swapped in one short transaction
    finish_type_change("order_items", "unit_price_cents", old_type=sa.Integer(), new_type=sa.BigInteger(),
                       revision=revision)
    # cleanup (a later release): the old column and its trigger dropped
    cleanup_type_change("order_items", "unit_price_cents")

Each has its downgrade counterpart (undo_start_type_change, undo_finish_type_change,
undo_cleanup_type_change), and the conversion is declared once in a backfill module
(backend.backfill.type_change.declare_type_change) so the workers know its copy.

On PostgreSQL:

- start adds `<column>_new` (nullable: instant), a BEFORE INSERT OR UPDATE trigger that
  sets it from `<column>` for every row the shop writes, and schedules the set-based
  copy of the rows written before. The app reads and writes `<column>` throughout.
- finish, once the copy is done: builds, while the shop writes, a copy of every index
  on the column (CREATE INDEX CONCURRENTLY on `<column>_new`) and of every CHECK
  (NOT VALID, then VALIDATE), plus a validated CHECK (`<column>_new` IS NOT NULL) when
  the column is NOT NULL. Then ONE short transaction, under the migration's
  lock_timeout and retries: drop the foreign keys at or from the column, its primary
  key / unique constraints and indexes; rename `<column>` to `<column>_old` and
  `<column>_new` to `<column>`; move the default, NOT NULL (no scan: the validated
  CHECK), the sequence (OWNED BY, and AS the new integer type); give the copies the
  originals' names, attach keys USING INDEX; add the foreign keys back NOT VALID; and
  replace the trigger by a reverse one that keeps `<column>_old` filled (NULL where a
  value no longer fits), so the downgrade works. After the commit the foreign keys
  are VALIDATEd while the shop writes.
- cleanup drops the trigger and `<column>_old`.

Downgrades: undo_cleanup adds `<column>_old` back with the reverse trigger and fills
it in batches of short transactions (no engine: `alembic downgrade` alone must do
it); undo_finish refuses while a row holds a value the old type cannot (NULL in
`<column>_old`), then swaps back the same way; undo_start drops the shadow column.

The catalog reads and the swap are PL/pgSQL blocks (backend.migrations.type_change_sql), so `alembic upgrade --sql`
renders the same steps; only the index copies need the live database (the offline
swap stops with a clear error when a copy is missing). Every step can run again
after a failed try (the lock-timeout retries rerun the whole revision).

On SQLite finish is the plain batch-mode alter_column (a development database is
small); start and cleanup do nothing.
"""
from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

from backend.backfill.definition import Backfill
from backend.backfill.registry import load_catalog
from backend.backfill.type_change import TypeChangeError, TypeChangeNames, type_name
from backend.migrations import context, offline, run_config
from backend.migrations import type_change_sql as sql
from backend.migrations.backfill_ops import require_backfill, schedule_backfill, unschedule_backfill
from backend.migrations.online import outside_transaction, add_column, create_index


# --- the three steps and their downgrades ---------------------------------------------

def start_type_change(table: str, column: str, new_type: sa.types.TypeEngine, *, revision: str | None = None) -> None:
    """Expand: `<column>_new` of `new_type`, kept in sync by a trigger, and its copy scheduled."""
    names = _names(table, column)
    if context.dialect_name() != "postgresql":
        return
    _require_declared(names)
    add_column(table, sa.Column(names.shadow, new_type, nullable=True))
    _install_trigger(names, target=names.shadow, target_type=new_type)
    schedule_backfill(names.backfill, revision=revision)


def undo_start_type_change(table: str, column: str, *, revision: str | None = None) -> None:
    """Downgrade of start: the trigger and the shadow column go, the copy's unfinished
    runs are cancelled (unschedule_backfill keeps their history)."""
    names = _names(table, column)
    if context.dialect_name() != "postgresql":
        return
    unschedule_backfill(names.backfill, revision=revision)
    _drop_trigger(names)
    op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {names.shadow}")


def finish_type_change(table: str, column: str, *, old_type: sa.types.TypeEngine, new_type: sa.types.TypeEngine,
                       revision: str | None = None) -> None:
    """Contract: behind the copy's gate, `<column>_new` becomes `<column>` (see the module)."""
    names = _names(table, column)
    if context.dialect_name() != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, type_=new_type, existing_type=old_type)
        return
    if _already_swapped(names, incoming=names.shadow, outgoing=names.old):
        _validate_foreign_keys(names)  # a retry after the swap committed
        return
    require_backfill(names.backfill, revision=revision)
    _swap(names, incoming=names.shadow, outgoing=names.old, outgoing_type=old_type)


def undo_finish_type_change(table: str, column: str, *, old_type: sa.types.TypeEngine,
                            new_type: sa.types.TypeEngine) -> None:
    """Downgrade of finish: the same swap the other way (`<column>_old` back to
    `<column>`), refused while a row holds a value the old type cannot."""
    names = _names(table, column)
    if context.dialect_name() != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, type_=old_type, existing_type=new_type)
        return
    if _already_swapped(names, incoming=names.old, outgoing=names.shadow):
        _validate_foreign_keys(names)
        return
    with outside_transaction():  # a scan, under a lock the shop's writes do not wait for
        _execute(sql.everything_fits_sql(names, old_type))
    _swap(names, incoming=names.old, outgoing=names.shadow, outgoing_type=new_type)


def cleanup_type_change(table: str, column: str) -> None:
    """The reverse trigger and `<column>_old` dropped: from here on, no way back but a restore."""
    names = _names(table, column)
    if context.dialect_name() != "postgresql":
        return
    _drop_trigger(names)
    op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {names.old}")


def undo_cleanup_type_change(table: str, column: str, old_type: sa.types.TypeEngine) -> None:
    """Downgrade of cleanup: `<column>_old` again, kept in sync by the reverse trigger
    and filled here by a copy in batches of its own short transactions (a downgrade
    runs with `alembic downgrade` alone, without the backfill engine)."""
    names = _names(table, column)
    if context.dialect_name() != "postgresql":
        return
    key = _require_declared(names).key
    add_column(table, sa.Column(names.old, old_type, nullable=True))
    _install_trigger(names, target=names.old, target_type=old_type)
    with outside_transaction():
        _execute(sql.copy_back_sql(names, key, type_name(old_type)))


# --- checks ------------------------------------------------------------------------------

def _execute(sql: str) -> None:
    """As written (PL/pgSQL has colons that are not bind parameters), online and offline."""
    op.execute(offline.verbatim(sql))


def _names(table: str, column: str) -> TypeChangeNames:
    try:
        return TypeChangeNames(table, column)
    except TypeChangeError as exc:
        raise CommandError(str(exc)) from None


def _require_declared(names: TypeChangeNames) -> Backfill:
    """The conversion's copy, declared in a backfill module; else one line saying how."""
    catalog = load_catalog(run_config.current().backfill_modules)
    if names.backfill not in catalog:
        raise CommandError(
            f"type change of {names.table}.{names.column}: no backfill {names.backfill!r}; declare it with "
            f"declare_type_change({names.table!r}, {names.column!r}, ...) (backend.backfill.type_change) in a "
            f"module of BACKFILL_MODULES")
    return catalog.get(names.backfill)


def _columns(table: str) -> dict[str, str]:
    """Column name -> type (format_type) of `table`, online."""
    rows = op.get_bind().execute(sa.text(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped"), {"table": table}).all()
    return dict(rows)


def _already_swapped(names: TypeChangeNames, *, incoming: str, outgoing: str) -> bool:
    """True when this swap has committed (a retry of the revision); a missing incoming
    column otherwise is a revision out of order, said in one line."""
    if context.is_offline():
        return False
    columns = _columns(names.table)
    if incoming in columns:
        return False
    if outgoing in columns:
        return True
    raise CommandError(f"type change of {names.table}.{names.column}: column {incoming} is missing "
                       f"(is the revision that adds it applied?)")


# --- trigger -------------------------------------------------------------------------------

def _install_trigger(names: TypeChangeNames, *, target: str, target_type: sa.types.TypeEngine) -> None:
    _execute(sql.trigger_sql(names, target, type_name(target_type)))


def _drop_trigger(names: TypeChangeNames) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {names.trigger} ON {names.table}")
    op.execute(f"DROP FUNCTION IF EXISTS {names.trigger}()")


# --- the swap ------------------------------------------------------------------------------

def _swap(names: TypeChangeNames, *, incoming: str, outgoing: str, outgoing_type: sa.types.TypeEngine) -> None:
    if not context.is_offline():
        _copy_indexes(names, incoming)
    _execute(sql.prepare_checks_sql(names, incoming))
    with outside_transaction():  # the validation scans; the shop writes on
        _execute(sql.validate_sql(names, incoming, "c"))
    _execute(sql.swap_sql(names, incoming, outgoing) + ";\n" + sql.trigger_sql(names, outgoing, type_name(outgoing_type)))
    _validate_foreign_keys(names)


def _validate_foreign_keys(names: TypeChangeNames) -> None:
    with outside_transaction():
        _execute(sql.validate_sql(names, names.column, "f"))


def _copy_indexes(names: TypeChangeNames, incoming: str) -> None:
    """CREATE INDEX CONCURRENTLY of a copy of every index on the column, on `incoming`."""
    rows = op.get_bind().execute(sa.text("""
        SELECT c.relname, i.indisunique, am.amname, i.indexprs IS NOT NULL OR i.indnatts <> i.indnkeyatts,
               pg_get_expr(i.indpred, i.indrelid),
               ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
        CROSS JOIN LATERAL (SELECT attnum FROM pg_attribute WHERE attrelid = i.indrelid AND attname = :column) col
        WHERE i.indrelid = to_regclass(:table) AND (col.attnum = ANY(i.indkey::int2[]) OR EXISTS (
          -- in an expression or the predicate (key columns of a constraint's index are not recorded here)
          SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
             AND d.refobjid = i.indrelid AND d.refobjsubid = col.attnum))
        ORDER BY c.relname"""), {"table": names.table, "column": names.column}).all()
    for name, unique, method, unusual, predicate, columns in rows:
        if method != "btree" or unusual:
            raise CommandError(f"type change of {names.table}.{names.column}: index {name} ({method}, with "
                               f"expressions or INCLUDE columns) cannot be copied; drop it before the type change "
                               f"and create it again after")
        where = _renamed(predicate, names.column, incoming) if predicate else None
        create_index(names.copy_of(name), names.table, [incoming if c == names.column else c for c in columns],
                     unique=unique, where=where)


def _renamed(expression: str, column: str, new: str) -> str:
    """`expression` with the column named `new` (the same rule as the PL/pgSQL below)."""
    return re.sub(rf"(^|[^a-z0-9_]){column}(?![a-z0-9_])", rf"\g<1>{new}", expression)
