"""The migration-safety rules. Each has an id, what goes wrong, and the safe way.

| id   | finding                                                                           |
| ---- | --------------------------------------------------------------------------------- |
| M001 | UPDATE / DELETE / INSERT ... SELECT (or TRUNCATE, MERGE) on an existing table in upgrade() |
| M002 | add_column NOT NULL without a server default on an existing table                 |
| M003 | NOT NULL set on an existing column with no require_backfill(...) gate before it   |
| M004 | index (or unique constraint) built on an existing table without CONCURRENTLY in an autocommit block |
| M005 | drop_table / drop_column on an existing table                                     |
| M006 | rename of a table or column (rename_table, alter_column(new_column_name=))        |
| M007 | column type change (alter_column(type_=)) on an existing table                   |
| M008 | downgrade() empty or `pass` while upgrade() is not                                |
| M009 | the revision reads table data (SELECT) to decide what it does                     |
| M010 | a `# migration-lint:` comment that acknowledges nothing (no reason, unknown rule) |

Schema rules look at upgrade() only: downgrade() undoes what upgrade() did, so its
drops are expected. M009 looks at both. Tables created by the same upgrade() are new:
nobody uses them yet, so nothing is flagged on them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from backend.schema.lint.walker import DataStatement, Operation, RevisionScript


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


def _where(table: str | None, column: str | None = None) -> str:
    name = table or "?"
    return f"{name}.{column}" if column else name


def _upgrade_ops(script: RevisionScript, *names: str) -> Iterable[Operation]:
    for op in script.operations:
        if op.function == "upgrade" and op.operation in names and script.is_existing(op.table, op.line):
            yield op


def _at(rule_id: str, node: Operation | DataStatement, message: str) -> Violation:
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
            yield _at("M003", op, (
                f"{op.written_as} sets {_where(op.table, op.column)} NOT NULL with no require_backfill(...) "
                f"earlier in upgrade(): fails on any row still NULL, after a full scan under an exclusive lock"))


def index_without_concurrently(script: RevisionScript) -> Iterable[Violation]:
    for op in _upgrade_ops(script, "create_index", "create_unique_constraint"):
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


def _acknowledgements(_script: RevisionScript) -> Iterable[Violation]:
    return ()  # M010 comes from the comments (see acks.py); listed here for its text


RULES: tuple[Rule, ...] = (
    Rule("M001", "data change in a revision",
         "schedule a backfill (schedule_backfill(...) in upgrade(), a Backfill class in backend/backfills/), "
         "then require_backfill(...) in the revision that needs the data", data_change),
    Rule("M002", "NOT NULL column without a default",
         "add the column nullable, backfill it, then set NOT NULL after require_backfill(...) in a later "
         "revision; or give it a server_default", not_null_column_without_default),
    Rule("M003", "NOT NULL without a backfill gate",
         "call require_backfill('<backfill>', revision=revision) first in upgrade(); on PostgreSQL add a "
         "CHECK (...) NOT VALID constraint, VALIDATE it in an autocommit_block(), then SET NOT NULL "
         "(see revision 0006)", not_null_without_gate),
    Rule("M004", "index built under a lock",
         "with op.get_context().autocommit_block(): op.create_index(..., postgresql_concurrently=True), "
         "from one migrating process (a unique constraint: such a unique index, then ADD CONSTRAINT ... "
         "USING INDEX)",
         index_without_concurrently),
    Rule("M005", "drop of a table or column",
         "stop using it in a release first, back up (run_migrations.py --backup DIR), then drop it and "
         "acknowledge: # migration-lint: ack M005 <why the data can go>", drops),
    Rule("M006", "rename",
         "expand and contract: add the new name, write both, backfill, switch the reads, drop the old "
         "name in a later release", renames),
    Rule("M007", "column type change",
         "add a column of the new type, fill it with a backfill, switch the code, drop the old column later",
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
)
RULES_BY_ID = {rule.id: rule for rule in RULES}
ACKNOWLEDGEABLE = {rule.id for rule in RULES if rule.acknowledgeable}
