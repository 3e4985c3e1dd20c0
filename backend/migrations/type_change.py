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

The catalog reads and the swap are PL/pgSQL blocks, so `alembic upgrade --sql`
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

from backend.migrations.backfill_ops import require_backfill, schedule_backfill, unschedule_backfill
from backend.backfill.definition import Backfill
from backend.backfill.registry import load_catalog
from backend.backfill.type_change import INTEGER_RANGES, TypeChangeError, TypeChangeNames, type_name
from backend.migrations import offline, run_config
from backend.migrations.online import _outside_transaction, add_column, create_index


# --- the three steps and their downgrades ---------------------------------------------

def start_type_change(table: str, column: str, new_type: sa.types.TypeEngine, *, revision: str | None = None) -> None:
    """Expand: `<column>_new` of `new_type`, kept in sync by a trigger, and its copy scheduled."""
    names = _names(table, column)
    if _dialect() != "postgresql":
        return
    _require_declared(names)
    add_column(table, sa.Column(names.shadow, new_type, nullable=True))
    _install_trigger(names, target=names.shadow, target_type=new_type)
    schedule_backfill(names.backfill, revision=revision)


def undo_start_type_change(table: str, column: str) -> None:
    """Downgrade of start: the trigger, the shadow column and the copy's runs go."""
    names = _names(table, column)
    if _dialect() != "postgresql":
        return
    unschedule_backfill(names.backfill)
    _drop_trigger(names)
    op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {names.shadow}")


def finish_type_change(table: str, column: str, *, old_type: sa.types.TypeEngine, new_type: sa.types.TypeEngine,
                       revision: str | None = None) -> None:
    """Contract: behind the copy's gate, `<column>_new` becomes `<column>` (see the module)."""
    names = _names(table, column)
    if _dialect() != "postgresql":
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
    if _dialect() != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, type_=old_type, existing_type=new_type)
        return
    if _already_swapped(names, incoming=names.old, outgoing=names.shadow):
        _validate_foreign_keys(names)
        return
    with _outside_transaction():  # a scan, under a lock the shop's writes do not wait for
        _execute(_everything_fits_sql(names, old_type))
    _swap(names, incoming=names.old, outgoing=names.shadow, outgoing_type=new_type)


def cleanup_type_change(table: str, column: str) -> None:
    """The reverse trigger and `<column>_old` dropped: from here on, no way back but a restore."""
    names = _names(table, column)
    if _dialect() != "postgresql":
        return
    _drop_trigger(names)
    op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {names.old}")


def undo_cleanup_type_change(table: str, column: str, old_type: sa.types.TypeEngine) -> None:
    """Downgrade of cleanup: `<column>_old` again, kept in sync by the reverse trigger
    and filled here by a copy in batches of its own short transactions (a downgrade
    runs with `alembic downgrade` alone, without the backfill engine)."""
    names = _names(table, column)
    if _dialect() != "postgresql":
        return
    key = _require_declared(names).key
    add_column(table, sa.Column(names.old, old_type, nullable=True))
    _install_trigger(names, target=names.old, target_type=old_type)
    with _outside_transaction():
        _execute(_copy_back_sql(names, key, type_name(old_type)))


# --- checks ------------------------------------------------------------------------------

def _dialect() -> str:
    return op.get_context().dialect.name


def _offline() -> bool:
    return op.get_context().as_sql


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
    if _offline():
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
    _execute(_trigger_sql(names, target, type_name(target_type)))


def _trigger_sql(names: TypeChangeNames, target: str, target_type: str) -> str:
    """The function that sets NEW.<target> from NEW.<column>, and its trigger. UPDATE OF
    the column only: a write that leaves the column alone leaves the copy alone."""
    value = _fits(f"NEW.{names.column}", target_type)
    return (
        f"CREATE OR REPLACE FUNCTION {names.trigger}() RETURNS trigger LANGUAGE plpgsql AS $body$ "
        f"BEGIN NEW.{target} := {value}; RETURN NEW; END $body$;\n"
        f"DROP TRIGGER IF EXISTS {names.trigger} ON {names.table};\n"
        f"CREATE TRIGGER {names.trigger} BEFORE INSERT OR UPDATE OF {names.column} ON {names.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {names.trigger}()")


def _drop_trigger(names: TypeChangeNames) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {names.trigger} ON {names.table}")
    op.execute(f"DROP FUNCTION IF EXISTS {names.trigger}()")


# --- the swap ------------------------------------------------------------------------------

def _swap(names: TypeChangeNames, *, incoming: str, outgoing: str, outgoing_type: sa.types.TypeEngine) -> None:
    if not _offline():
        _copy_indexes(names, incoming)
    _execute(_prepare_checks_sql(names, incoming))
    with _outside_transaction():  # the validation scans; the shop writes on
        _execute(_validate_sql(names, incoming, "c"))
    _execute(_swap_sql(names, incoming, outgoing) + ";\n" + _trigger_sql(names, outgoing, type_name(outgoing_type)))
    _validate_foreign_keys(names)


def _validate_foreign_keys(names: TypeChangeNames) -> None:
    with _outside_transaction():
        _execute(_validate_sql(names, names.column, "f"))


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


def _block(names: TypeChangeNames, body: str, declare: str = "") -> str:
    """A DO block with the table's oid and the column's attnum (`c_num`) at hand."""
    return f"""DO $type_change$
DECLARE
  t oid := to_regclass('{names.table}');
  c_num int2 := (SELECT attnum FROM pg_attribute WHERE attrelid = to_regclass('{names.table}')
                 AND attname = '{names.column}' AND NOT attisdropped);
  {declare}
BEGIN
{body}
END $type_change$"""


def _not_null_check(incoming: str) -> str:
    return TypeChangeNames.copy_of(f"nn_{incoming}")


def _prepare_checks_sql(names: TypeChangeNames, incoming: str) -> str:
    """A NOT VALID copy of each CHECK on the column, and (incoming IS NOT NULL) for a NOT NULL column."""
    rename = f"'(^|[^a-z0-9_]){names.column}(?![a-z0-9_])', '\\1{incoming}', 'g'"
    return _block(names, f"""
  FOR con IN SELECT conname, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '') AS def
             FROM pg_constraint WHERE conrelid = t AND contype = 'c' AND c_num = ANY(conkey) LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t AND conname = left(con.conname, 60) || '_tc') THEN
      EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s NOT VALID', '{names.table}', left(con.conname, 60) || '_tc',
                     regexp_replace(con.def, {rename}));
    END IF;
  END LOOP;
  IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = t AND attnum = c_num)
     AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t AND conname = '{_not_null_check(incoming)}') THEN
    ALTER TABLE {names.table} ADD CONSTRAINT {_not_null_check(incoming)} CHECK ({incoming} IS NOT NULL) NOT VALID;
  END IF;""", declare="con record;")


def _validate_sql(names: TypeChangeNames, column: str, kind: str) -> str:
    """VALIDATE every NOT VALID constraint of `kind` ('c' check, 'f' foreign key) on
    `column` of the table, or a foreign key pointing at it."""
    return _block(names, f"""
  FOR con IN SELECT conrelid::regclass::text AS tab, conname FROM pg_constraint
             WHERE contype = '{kind}' AND NOT convalidated AND (
               (conrelid = t AND (SELECT attnum FROM pg_attribute WHERE attrelid = t AND attname = '{column}') = ANY(conkey))
               OR (confrelid = t AND (SELECT attnum FROM pg_attribute WHERE attrelid = t AND attname = '{column}')
                   = ANY(confkey))) LOOP
    EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', con.tab, con.conname);
  END LOOP;""", declare="con record;")


def _fits(value: str, type_: str) -> str:
    """`value`, or NULL where an integer does not fit the narrower `type_` (as the reverse trigger)."""
    bounds = INTEGER_RANGES.get(type_)
    return f"CASE WHEN {value} BETWEEN {bounds[0]} AND {bounds[1]} THEN {value} END" if bounds else value


def _copy_back_sql(names: TypeChangeNames, key: str, old_type: str, batch_size: int = 5000) -> str:
    """`<column>_old` filled from `<column>` in key order, one COMMIT per batch (a DO
    block outside a transaction may commit): no row stays locked longer than a batch."""
    table, column, old = names.table, names.column, names.old
    return f"""DO $type_change$
DECLARE
  after bigint;
  last bigint;
BEGIN
  LOOP
    WITH batch AS (SELECT {key} FROM {table} WHERE after IS NULL OR {key} > after ORDER BY {key} LIMIT {batch_size}),
         copied AS (UPDATE {table} SET {old} = {_fits(f"{table}.{column}", old_type)} FROM batch
                    WHERE {table}.{key} = batch.{key} AND {table}.{old} IS NULL AND {table}.{column} IS NOT NULL)
    SELECT max({key}) INTO last FROM batch;
    EXIT WHEN last IS NULL;
    after := last;
    COMMIT;
  END LOOP;
END $type_change$"""


def _everything_fits_sql(names: TypeChangeNames, old_type: sa.types.TypeEngine) -> str:
    table, column, old = names.table, names.column, names.old
    return f"""DO $type_change$
BEGIN
  IF EXISTS (SELECT 1 FROM {table} WHERE {old} IS NULL AND {column} IS NOT NULL) THEN
    RAISE EXCEPTION 'type change of {table}.{column}: some rows hold values that {type_name(old_type)} cannot '
                    '(written since the contract), the downgrade would lose them';
  END IF;
END $type_change$"""


def _swap_sql(names: TypeChangeNames, incoming: str, outgoing: str) -> str:
    """The one short transaction (see the module): everything on the column moves to `incoming`."""
    table, column = names.table, names.column
    return _block(names, f"""
  -- the tables whose foreign keys point here first: a shop statement inserting into one
  -- of them locks it before {table}, so this order waits for it instead of deadlocking
  FOR con IN SELECT DISTINCT conrelid::regclass::text AS tab FROM pg_constraint
             WHERE contype = 'f' AND confrelid = t AND conrelid <> t AND c_num = ANY(confkey) LOOP
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', con.tab);
  END LOOP;
  LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;
  IF i_num IS NULL THEN
    RAISE EXCEPTION 'type change of {table}.{column}: column {incoming} is missing';
  END IF;
  IF (SELECT attidentity FROM pg_attribute WHERE attrelid = t AND attnum = c_num) <> '' THEN
    RAISE EXCEPTION 'type change of {table}.{column}: an identity column cannot be swapped (make it a serial first)';
  END IF;
  -- every index on the column has its copy on {incoming}, built concurrently beforehand
  SELECT array_agg(c.relname ORDER BY c.relname) INTO indexes FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE i.indrelid = t AND (c_num = ANY(i.indkey::int2[]) OR EXISTS (
     SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
        AND d.refobjid = t AND d.refobjsubid = c_num));
  FOREACH idx IN ARRAY coalesce(indexes, '{{}}') LOOP
    IF to_regclass(left(idx, 60) || '_tc') IS NULL THEN
      RAISE EXCEPTION 'type change of {table}.{column}: index % has no copy %_tc on {incoming}: run this revision '
                      'online (finish_type_change builds it concurrently) or build it first', idx, left(idx, 60);
    END IF;
  END LOOP;
  -- foreign keys from or at the column: dropped now, added back NOT VALID below
  FOR con IN SELECT conrelid::regclass::text AS tab, conname, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '') AS def
             FROM pg_constraint WHERE contype = 'f'
              AND ((conrelid = t AND c_num = ANY(conkey)) OR (confrelid = t AND c_num = ANY(confkey))) LOOP
    fk_tables := fk_tables || con.tab; fk_names := fk_names || con.conname::text; fk_defs := fk_defs || con.def;
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', con.tab, con.conname);
  END LOOP;
  -- primary key and unique constraints: dropped now, attached to the copies below
  FOR con IN SELECT conname, contype, conindid::regclass::text AS index_name FROM pg_constraint
             WHERE conrelid = t AND contype IN ('p', 'u') AND c_num = ANY(conkey) LOOP
    key_names := key_names || con.conname::text; key_kinds := key_kinds || con.contype::text;
    key_indexes := key_indexes || con.index_name;
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', con.conname);
  END LOOP;
  FOREACH idx IN ARRAY coalesce(indexes, '{{}}') LOOP
    EXECUTE format('DROP INDEX IF EXISTS %I', idx);
  END LOOP;
  -- default, NOT NULL and sequence of the column
  SELECT pg_get_expr(adbin, adrelid) INTO col_default FROM pg_attrdef WHERE adrelid = t AND adnum = c_num;
  SELECT attnotnull INTO not_null FROM pg_attribute WHERE attrelid = t AND attnum = c_num;
  seq := pg_get_serial_sequence('{table}', '{column}');
  ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT, ALTER COLUMN {column} DROP NOT NULL;
  DROP TRIGGER IF EXISTS {names.trigger} ON {table};
  ALTER TABLE {table} RENAME COLUMN {column} TO {outgoing};
  ALTER TABLE {table} RENAME COLUMN {incoming} TO {column};
  IF col_default IS NOT NULL THEN
    EXECUTE format('ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT %s', col_default);
  END IF;
  IF not_null THEN  -- no scan: {_not_null_check(incoming)} is validated
    ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;
  END IF;
  ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {_not_null_check(incoming)};
  IF seq IS NOT NULL THEN
    EXECUTE format('ALTER SEQUENCE %s OWNED BY {table}.{column}', seq);
    new_type := (SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = t AND attname = '{column}');
    IF new_type IN ('smallint', 'integer', 'bigint') THEN
      EXECUTE format('ALTER SEQUENCE %s AS %s', seq, new_type);
    END IF;
  END IF;
  -- the copies take the originals' names (c_num is now {outgoing})
  FOR con IN SELECT conname FROM pg_constraint WHERE conrelid = t AND contype = 'c' AND c_num = ANY(conkey) LOOP
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t AND conname = left(con.conname, 60) || '_tc') THEN
      EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', con.conname);
      EXECUTE format('ALTER TABLE {table} RENAME CONSTRAINT %I TO %I', left(con.conname, 60) || '_tc', con.conname);
    END IF;
  END LOOP;
  FOREACH idx IN ARRAY coalesce(indexes, '{{}}') LOOP
    EXECUTE format('ALTER INDEX %I RENAME TO %I', left(idx, 60) || '_tc', idx);
  END LOOP;
  FOR k IN 1 .. coalesce(array_length(key_names, 1), 0) LOOP
    EXECUTE format('ALTER TABLE {table} ADD CONSTRAINT %I %s USING INDEX %s', key_names[k],
                   CASE key_kinds[k] WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END, key_indexes[k]);
  END LOOP;
  FOR k IN 1 .. coalesce(array_length(fk_names, 1), 0) LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID', fk_tables[k], fk_names[k], fk_defs[k]);
  END LOOP;""", declare=f"""i_num int2 := (SELECT attnum FROM pg_attribute WHERE attrelid = to_regclass('{table}')
                 AND attname = '{incoming}' AND NOT attisdropped);
  con record; k int; idx text; indexes text[]; col_default text; not_null bool; seq text; new_type text;
  fk_tables text[] := '{{}}'; fk_names text[] := '{{}}'; fk_defs text[] := '{{}}';
  key_names text[] := '{{}}'; key_kinds text[] := '{{}}'; key_indexes text[] := '{{}}';""")
