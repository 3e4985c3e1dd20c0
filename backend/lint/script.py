"""What the linter's rules read of a revision script: its schema operations, data
statements and lock-timeout bypasses, in source order (built by walker.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Operation:
    """One schema change. `operation` uses Alembic's names (create_index, alter_column, ...)."""
    operation: str
    function: str  # upgrade / downgrade
    line: int
    end_line: int
    table: str | None  # None: not a literal the walker could resolve
    column: str | None = None
    index: str | None = None
    not_null: bool = False  # add_column of a NOT NULL column, alter_column(nullable=False)
    server_default: bool = False
    type_change: bool = False
    new_name: str | None = None  # rename_table's new name, alter_column(new_column_name=)
    concurrently: bool = False
    in_autocommit_block: bool = False
    after_gate: bool = False
    written_as: str = ""  # how the script wrote it, for messages
    helper: str | None = None  # the backend.migrations.online helper that does it (set_not_null, ...)


@dataclass(frozen=True)
class DataStatement:
    kind: str  # update, delete, insert-select, truncate, merge, select
    function: str
    line: int
    end_line: int
    table: str | None
    written_as: str


@dataclass(frozen=True)
class Bypass:
    """A way around the migration's lock_timeout and its retries. kind: set-timeout
    (raw SQL changes lock_timeout), own-connection, no-timeout (a statement that
    queues the shop inside `with lock_timeout(None):`)."""
    kind: str
    function: str
    line: int
    end_line: int
    written_as: str
    table: str | None = None
    detail: str = ""  # the SET statement, for set-timeout


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    line: int
    end_line: int
    is_empty: bool  # only a docstring, `pass` or `...`


@dataclass
class RevisionScript:
    path: Path
    revision: str | None
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    operations: list[Operation] = field(default_factory=list)
    data: list[DataStatement] = field(default_factory=list)
    bypasses: list[Bypass] = field(default_factory=list)

    def is_existing(self, table: str | None, line: int) -> bool:
        """False for a table `upgrade()` created above `line`: new, so nobody else is
        using it yet. (A table dropped, then created again, is existing at its drop.)"""
        return table is None or not any(
            op.function == "upgrade" and op.operation == "create_table" and op.table == table and op.line < line
            for op in self.operations)
