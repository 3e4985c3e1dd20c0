"""The migration-safety rules. Each has an id, what goes wrong, and the safe way.

| id   | finding                                                                           |
| ---- | --------------------------------------------------------------------------------- |
| M001 | UPDATE / DELETE / INSERT ... SELECT (or TRUNCATE, MERGE) on an existing table in upgrade() |
| M002 | add_column NOT NULL without a server default on an existing table                 |
| M003 | NOT NULL set on an existing column (set_not_null too) with no require_backfill(...) gate before it |
| M004 | index (or unique constraint) built on an existing table without CONCURRENTLY in an autocommit block |
| M005 | drop_table / drop_column on an existing table                                     |
| M006 | rename of a table or column (rename_table, alter_column(new_column_name=))        |
| M007 | column type change (alter_column(type_=)) on an existing table (backend.migrations.type_change is the way) |
| M008 | downgrade() empty or `pass` while upgrade() is not                                |
| M009 | the revision reads table data (SELECT) to decide what it does                     |
| M010 | a `# migration-lint:` comment that acknowledges nothing (no reason, unknown rule) |
| M011 | DDL outside lock_timeout + retries: raw SET lock_timeout, an own connection, lock_timeout(None) around a lock |

Schema rules look at upgrade() only: downgrade() undoes what upgrade() did, so its
drops are expected. M009 and M011 look at both (a rollback waits for locks on the live
database too). Tables created by the same upgrade() are new: nobody uses them yet, so
nothing is flagged on them.

The helpers of backend.migrations.online are understood: create_index, drop_index and
add_unique_constraint build CONCURRENTLY (no M004); set_not_null still needs its gate
(M003) and add_column a default for a NOT NULL column (M002).

M011 decisions. `SET statement_timeout` is not flagged: lock_timeout bounds a lock wait
whatever statement_timeout says, and the long steps (a VALIDATE, a concurrent build)
need no statement_timeout. Every raw SET of lock_timeout is flagged, a lower one too:
only `with lock_timeout(...)` puts the migration's value back. Under
`lock_timeout(None)`, ADD CONSTRAINT ... NOT VALID is flagged like any ALTER TABLE: it
holds its lock for an instant once it has it, but while it waits for it every shop
statement on the table queues behind it; VALIDATE CONSTRAINT and CONCURRENTLY builds are
not (their locks queue no shop statement). A connection the revision opens itself
(create_engine, engine.connect/begin, raw_connection) is flagged where it is opened,
whatever runs on it: the walker cannot follow which statements use it.

Advice, not a finding: an index built CONCURRENTLY by hand in an autocommit block is
correct for M004, but a failed build leaves an INVALID index that a retry trips over;
the report notes that create_index(...) of backend.migrations.online cleans it up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from backend.lint.script import Bypass, DataStatement, Operation, RevisionScript


@dataclass(frozen=True)
class Violation:
    """What a rule found, before acknowledgements are matched."""
    rule_id: str
    line: int
    end_line: int
    message: str


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    alternative: str
    check: Callable[[RevisionScript], Iterable[Violation]]
    acknowledgeable: bool = True


@dataclass(frozen=True)
class Advice:
    """A better way that is not a hazard: printed as a note, never fails the check."""
    line: int
    message: str


def _where(table: str | None, column: str | None = None) -> str:
    name = table or "?"
    return f"{name}.{column}" if column else name


def _upgrade_ops(script: RevisionScript, *names: str) -> Iterable[Operation]:
    for op in script.operations:
        if op.function == "upgrade" and op.operation in names and script.is_existing(op.table, op.line):
            yield op


def _at(rule_id: str, node: Operation | DataStatement | Bypass, message: str) -> Violation:
    return Violation(rule_id, node.line, node.end_line, message)


def data_change(script: RevisionScript) -> Iterable[Violation]:
    for statement in script.data:
        if statement.function == "upgrade" and statement.kind != "select" and script.is_existing(statement.table, statement.line):
            yield _at("M001", statement, (
                f"{statement.written_as} changes rows of existing table {_where(statement.table)} inside upgrade(): "
                f"one transaction holds its row locks (and the schema lock) until every row is done"))


def not_null_column_without_default(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "add_column"):
        if op.not_null and not op.server_default:
            yield _at("M002", op, (
                f"{op.written_as} adds NOT NULL column {_where(op.table, op.column)} without a server default: "
                f"fails on a table that has rows"))


def not_null_without_gate(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "alter_column"):
        if op.not_null and not op.after_gate:
            scan = " (after its validation scan)" if op.helper else ", after a full scan under an exclusive lock"
            yield _at("M003", op, (
                f"{op.written_as} sets {_where(op.table, op.column)} NOT NULL with no require_backfill(...) "
                f"earlier in upgrade(): fails on any row still NULL{scan}"))


def index_without_concurrently(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "create_index", "create_unique_constraint"):
        if op.helper:
            continue  # backend.migrations.online builds it CONCURRENTLY
        if op.operation == "create_unique_constraint":
            yield _at("M004", op, (
                f"{op.written_as} adds a unique constraint to existing table {_where(op.table)}: on PostgreSQL "
                f"its index is built under an ACCESS EXCLUSIVE lock (no reads, no writes)"))
        elif not op.concurrently:
            yield _at("M004", op, (
                f"{op.written_as} builds index {op.index or '?'} on existing table {_where(op.table)} without "
                f"postgresql_concurrently=True: on PostgreSQL writes to the table wait for the whole build"))
        elif not op.in_autocommit_block:
            yield _at("M004", op, (
                f"{op.written_as} builds index {op.index or '?'} CONCURRENTLY outside "
                f"`with op.get_context().autocommit_block():`: PostgreSQL refuses it inside the revision's "
                f"transaction"))


def drops(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "drop_table", "drop_column"):
        what = f"table {_where(op.table)}" if op.operation == "drop_table" else f"column {_where(op.table, op.column)}"
        yield _at("M005", op, (
            f"{op.written_as} drops {what}: its data is gone (only a backup brings it back), and code still "
            f"deployed that uses it fails"))


def renames(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "rename_table", "alter_column"):
        if op.operation == "rename_table":
            yield _at("M006", op, (
                f"{op.written_as} renames table {_where(op.table)} to {op.new_name}: code still deployed "
                f"uses the old name and fails until the new release is out"))
        elif op.new_name:
            yield _at("M006", op, (
                f"{op.written_as} renames column {_where(op.table, op.column)} to {op.new_name}: code still "
                f"deployed uses the old name and fails until the new release is out"))


def type_changes(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "alter_column"):
        if op.type_change:
            yield _at("M007", op, (
                f"{op.written_as} changes the type of {_where(op.table, op.column)}: most type changes rewrite "
                f"the table under an ACCESS EXCLUSIVE lock on PostgreSQL (SQLite copies the table)"))


def empty_downgrade(script: RevisionScript) -> Iterable[Violation]:
    upgrade, downgrade = script.functions.get("upgrade"), script.functions.get("downgrade")
    if upgrade is None or upgrade.is_empty:
        return
    consequence = "while upgrade() changes the schema: the revision cannot be rolled back"
    if downgrade is None:
        yield Violation("M008", upgrade.line, upgrade.line, f"there is no downgrade() {consequence}")
    elif downgrade.is_empty:
        yield Violation("M008", downgrade.line, downgrade.end_line, f"downgrade() does nothing {consequence}")


def data_dependent(script: RevisionScript) -> Iterable[Violation]:
    for statement in script.data:
        if statement.kind == "select":
            yield _at("M009", statement, (
                f"{statement.written_as} in {statement.function}() reads data of table "
                f"{_where(statement.table)} to decide what to do: the revision does different things on "
                f"different databases, so a rehearsal no longer predicts production"))


def lock_timeout_bypass(script: RevisionScript) -> Iterable[Violation]:
    for bypass in script.bypasses:
        if bypass.kind == "no-timeout" and not _existing_for(script, bypass):
            continue
        yield _at("M011", bypass, _BYPASS_MESSAGES[bypass.kind](bypass))


def _existing_for(script: RevisionScript, bypass: Bypass) -> bool:
    """In downgrade() every table is in use (upgrade() made it)."""
    return bypass.function == "downgrade" or script.is_existing(bypass.table, bypass.line)


_BYPASS_MESSAGES: dict[str, Callable[[Bypass], str]] = {
    "set-timeout": lambda b: (
        f"{b.written_as} sets lock_timeout by hand ({b.detail}): nothing puts the migration's value back as "
        f"`with lock_timeout(...)` does (a plain SET holds for every later revision of the run, SET LOCAL "
        f"until the transaction ends), and an ALTER that waits longer queues every shop statement on its table"),
    "own-connection": lambda b: (
        f"{b.written_as} in {b.function}() opens a database connection of the revision's own: what runs on it "
        f"has no lock_timeout, is no part of the revision's retried transaction, and can wait forever for a "
        f"lock the revision itself holds"),
    "no-timeout": lambda b: (
        f"{b.written_as} runs inside `with lock_timeout(None):` and needs a lock that stops reads or writes of "
        f"{_where(b.table)}: while it waits behind a long transaction, every shop statement on the table "
        f"queues behind it, with no timeout to give up and retry"),
}


def advice(script: RevisionScript) -> Iterable[Advice]:
    """Hand-written concurrent builds: right for M004, but not re-runnable."""
    for op in _upgrade_ops(script, "create_index"):
        if op.concurrently and op.in_autocommit_block and not op.helper:
            yield Advice(op.line, (
                f"{op.written_as} builds index {op.index or '?'} CONCURRENTLY by hand: a failed or cancelled "
                f"build leaves an INVALID index that the revision's retry trips over (or, with IF NOT EXISTS, "
                f"keeps); create_index(...) from backend.migrations.online drops such a leftover and builds again"))


def _acknowledgements(_script: RevisionScript) -> Iterable[Violation]:
    return ()  # M010 comes from the comments (see acks.py); listed here for its text


RULES: tuple[Rule, ...] = (
    Rule("M001", "data change in a revision",
         "schedule a backfill (schedule_backfill(...) in upgrade(), a Backfill class in backend/shipped_backfills/), "
         "then require_backfill(...) in the revision that needs the data", data_change),
    Rule("M002", "NOT NULL column without a default",
         "add the column nullable (add_column(table, column) from backend.migrations.online), backfill it, then "
         "require_backfill(...) and set_not_null(table, column, existing_type=...) in a later revision; or "
         "give it a server_default", not_null_column_without_default),
    Rule("M003", "NOT NULL without a backfill gate",
         "call require_backfill('<backfill>', revision=revision) first in upgrade(), then "
         "set_not_null(table, column, existing_type=...) from backend.migrations.online (a CHECK NOT VALID "
         "validated while the shop writes, then SET NOT NULL without a scan)", not_null_without_gate),
    Rule("M004", "index built under a lock",
         "from backend.migrations.online import create_index, add_unique_constraint: create_index(name, table, "
         "columns) builds CONCURRENTLY in an autocommit block and rebuilds an INVALID leftover; "
         "add_unique_constraint(name, table, columns) attaches such a unique index with ADD CONSTRAINT ... "
         "USING INDEX; a build too long for the deploy: schedule_index(name, table, columns, revision=revision) "
         "from backend.migrations.index_jobs, built in a maintenance window, and require_index(name) where needed "
         "(docs/index-jobs.md)",
         index_without_concurrently),
    Rule("M005", "drop of a table or column",
         "stop using it in a release first, back up (run_migrations.py --backup DIR), then drop it and "
         "acknowledge: # migration-lint: ack M005 <why the data can go>", drops),
    Rule("M006", "rename",
         "expand and contract: add the new name, write both, backfill, switch the reads, drop the old "
         "name in a later release", renames),
    Rule("M007", "column type change",
         "change it in three revisions with backend.migrations.type_change (docs/type-changes.md): "
         "start_type_change(table, column, new_type) adds a shadow column kept in sync by a trigger and "
         "schedules its copy; finish_type_change(table, column, old_type=..., new_type=...) waits for the copy "
         "and swaps the columns in one short transaction (indexes, keys, foreign keys, default, sequence "
         "moved); cleanup_type_change(table, column) drops the old column in a later release",
         type_changes),
    Rule("M008", "no downgrade",
         "undo each upgrade() step in reverse order in downgrade() (or raise an error that says why the "
         "revision is irreversible)", empty_downgrade),
    Rule("M009", "data-dependent revision",
         "make the revision unconditional; per-row decisions belong in a backfill (its pending_filter and "
         "process)", data_dependent),
    Rule("M010", "unreadable acknowledgement",
         "write it as: # migration-lint: ack M00X <why this is safe here>", _acknowledgements,
         acknowledgeable=False),
    Rule("M011", "DDL outside the lock timeout",
         "run on the revision's connection (op.execute, op.get_bind()) so env.py's lock_timeout and retries "
         "cover it; wait longer only with `with lock_timeout(seconds):` from backend.migrations.online (a number: "
         "None only around CONCURRENTLY builds and VALIDATE); for the long steps use its create_index, "
         "add_unique_constraint, set_not_null, add_foreign_key", lock_timeout_bypass),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}
ACKNOWLEDGEABLE = {rule.id for rule in RULES if rule.acknowledgeable}
