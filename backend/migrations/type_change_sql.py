"""The SQL of a column type change (backend.migrations.type_change): the sync trigger,
and the PL/pgSQL blocks that read the catalog when they run (so that offline scripts
do the same as the online upgrade): the CHECK copies, their validation, the swap, the
copy back of a downgrade.

Table, column and key names are lower-case unquoted identifiers (TypeChangeNames
checks them), so they are written into the SQL as they are.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.type_change import INTEGER_RANGES, TypeChangeNames, type_name


def trigger_sql(names: TypeChangeNames, target: str, target_type: str) -> str:
    """The function that sets NEW.<target> from NEW.<column>, and its trigger. UPDATE OF
    the column only: a write that leaves the column alone leaves the copy alone."""
    value = fits(f"NEW.{names.column}", target_type)
    return (
        f"CREATE OR REPLACE FUNCTION {names.trigger}() RETURNS trigger LANGUAGE plpgsql AS $body$ "
        f"BEGIN NEW.{target} := {value}; RETURN NEW; END $body$;\n"
        f"DROP TRIGGER IF EXISTS {names.trigger} ON {names.table};\n"
        f"CREATE TRIGGER {names.trigger} BEFORE INSERT OR UPDATE OF {names.column} ON {names.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {names.trigger}()")


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


def prepare_checks_sql(names: TypeChangeNames, incoming: str) -> str:
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


def validate_sql(names: TypeChangeNames, column: str, kind: str) -> str:
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


def fits(value: str, type_: str) -> str:
    """`value`, or NULL where an integer does not fit the narrower `type_` (as the reverse trigger)."""
    bounds = INTEGER_RANGES.get(type_)
    return f"CASE WHEN {value} BETWEEN {bounds[0]} AND {bounds[1]} THEN {value} END" if bounds else value


def copy_back_sql(names: TypeChangeNames, key: str, old_type: str, batch_size: int = 5000) -> str:
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
         copied AS (UPDATE {table} SET {old} = {fits(f"{table}.{column}", old_type)} FROM batch
                    WHERE {table}.{key} = batch.{key} AND {table}.{old} IS NULL AND {table}.{column} IS NOT NULL)
    SELECT max({key}) INTO last FROM batch;
    EXIT WHEN last IS NULL;
    after := last;
    COMMIT;
  END LOOP;
END $type_change$"""


def everything_fits_sql(names: TypeChangeNames, old_type: sa.types.TypeEngine) -> str:
    table, column, old = names.table, names.column, names.old
    return f"""DO $type_change$
BEGIN
  IF EXISTS (SELECT 1 FROM {table} WHERE {old} IS NULL AND {column} IS NOT NULL) THEN
    RAISE EXCEPTION 'type change of {table}.{column}: some rows hold values that {type_name(old_type)} cannot '
                    '(written since the contract), the downgrade would lose them';
  END IF;
END $type_change$"""


def swap_sql(names: TypeChangeNames, incoming: str, outgoing: str) -> str:
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
