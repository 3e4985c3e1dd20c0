"""What a literal SQL string does, as far as the linter cares.

Revisions sometimes bypass Alembic's operations with raw SQL (`op.execute("...")`,
`sa.text("...")`, `connection.execute("...")`); this module recognises the
statements the rules are about. It is a tokenizer-free approximation: comments and
quoted strings are removed, then each statement is matched by its leading words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# An identifier; `{}` stands for a part of an f-string or str.format() the linter
# could not resolve (a variable): the statement is still checked.
_IDENT = r'(?:"[^"]+"|[\w$]+|\{\})(?:\.(?:"[^"]+"|[\w$]+|\{\}))?'
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_QUOTED = re.compile(r"'(?:[^']|'')*'")

_UPDATE = re.compile(rf"\bUPDATE\s+(?:ONLY\s+)?({_IDENT})", re.IGNORECASE)
_NOT_A_DML_UPDATE = re.compile(r"\b(?:ON|FOR|DO|KEY|OF)\s*$", re.IGNORECASE)
_DELETE = re.compile(rf"\bDELETE\s+FROM\s+(?:ONLY\s+)?({_IDENT})", re.IGNORECASE)
_INSERT = re.compile(rf"\bINSERT\s+INTO\s+({_IDENT})", re.IGNORECASE)
_TRUNCATE = re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?({_IDENT})", re.IGNORECASE)
_MERGE = re.compile(rf"^\s*MERGE\s+INTO\s+(?:ONLY\s+)?({_IDENT})", re.IGNORECASE)
_SELECT = re.compile(r"\bSELECT\b", re.IGNORECASE)
_FROM = re.compile(rf"\bFROM\s+(?:ONLY\s+)?({_IDENT})", re.IGNORECASE)
_READS = re.compile(r"^\s*(?:SELECT|WITH|VALUES|TABLE|SHOW)\b", re.IGNORECASE)

_CREATE_INDEX = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:({_IDENT})\s+)?"
    rf"ON\s+(?:ONLY\s+)?({_IDENT})", re.IGNORECASE)
_DROP_TABLE = re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_IDENT})", re.IGNORECASE)
_ALTER_TABLE = re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_IDENT})\s+(.*)$",
                          re.IGNORECASE | re.DOTALL)
_ACTION_DROP_COLUMN = re.compile(rf"^DROP\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)(?:IF\s+EXISTS\s+)?({_IDENT})", re.IGNORECASE)
_ACTION_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+({_IDENT})", re.IGNORECASE)
_ACTION_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)({_IDENT})\s+TO\s+({_IDENT})",
                                   re.IGNORECASE)
_ACTION_TYPE = re.compile(rf"^ALTER\s+(?:COLUMN\s+)?({_IDENT})\s+(?:SET\s+DATA\s+)?TYPE\b", re.IGNORECASE)
_ACTION_SET_NOT_NULL = re.compile(rf"^ALTER\s+(?:COLUMN\s+)?({_IDENT})\s+SET\s+NOT\s+NULL\b", re.IGNORECASE)
# A unique or primary key constraint that builds its index now (not `USING INDEX`,
# which attaches an index built CONCURRENTLY beforehand: the safe way).
_ACTION_ADD_UNIQUE = re.compile(
    rf"^ADD\s+(?:CONSTRAINT\s+{_IDENT}\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b(?!.*\bUSING\s+INDEX\b)",
    re.IGNORECASE | re.DOTALL)
_ACTION_ADD_COLUMN = re.compile(
    rf"^ADD\s+(?:COLUMN\s+)?(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|CHECK\b|FOREIGN\b|EXCLUDE\b)"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?({_IDENT})\s+(.*)$", re.IGNORECASE | re.DOTALL)


# Changes of the lock_timeout the migration runs under (statement_timeout is left
# alone: lock_timeout bounds a lock wait whatever statement_timeout says).
_SET_LOCK_TIMEOUT = re.compile(r"^\s*SET\s+(?:(?:SESSION|LOCAL)\s+)?lock_timeout\s*(?:=|\bTO\b)\s*(.*)$",
                               re.IGNORECASE | re.DOTALL)
_RESET_LOCK_TIMEOUT = re.compile(r"^\s*RESET\s+(?:lock_timeout|ALL)\s*$", re.IGNORECASE)
_SET_CONFIG_LOCK_TIMEOUT = re.compile(r"\bset_config\s*\(\s*'lock_timeout'\s*,\s*([^,]*)", re.IGNORECASE)
_NO_TIMEOUT = re.compile(r"^'?\s*0+\s*(?:us|ms|s|min|h|d)?\s*'?$", re.IGNORECASE)
_SERVER_DEFAULT = "turns it back to the server's default (none, unless configured)"

# Statements whose lock stops the shop's reads or writes of a table for as long as
# they wait for it (what `with lock_timeout(None):` must not wrap).
_LOCKING = re.compile(rf"^\s*(?:DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?|TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?"
                      rf"|CLUSTER\s+(?:VERBOSE\s+)?|VACUUM\s+(?:\(\s*)?FULL\b[^;]*?\s)({_IDENT})?", re.IGNORECASE)
_LOCK_TABLE = re.compile(rf"^\s*LOCK\s+(?:TABLE\s+)?(?:ONLY\s+)?({_IDENT})(?:\s+IN\s+(.*?)\s+MODE)?",
                         re.IGNORECASE | re.DOTALL)
_SHOP_FRIENDLY_LOCKS = {"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE"}
_DROP_INDEX = re.compile(r"^\s*DROP\s+INDEX\s+(CONCURRENTLY\b)?", re.IGNORECASE)
_REINDEX = re.compile(rf"^\s*REINDEX\s+(?:\([^)]*\)\s*)?\w+\s+(CONCURRENTLY\s+)?({_IDENT})", re.IGNORECASE)
_CREATE_TRIGGER = re.compile(rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\b.*?\bON\s+({_IDENT})",
                             re.IGNORECASE | re.DOTALL)
_ACTION_VALIDATE = re.compile(r"^\s*VALIDATE\s+CONSTRAINT\b", re.IGNORECASE)


@dataclass(frozen=True)
class SqlData:
    """A statement that reads or changes rows: kind is update, delete, insert-select,
    truncate, merge or select."""
    kind: str
    table: str | None


@dataclass(frozen=True)
class SqlDdl:
    """A schema change written in SQL, in the walker's operation vocabulary."""
    operation: str  # create_index, drop_table, drop_column, rename_table, alter_column, add_column
    table: str
    column: str | None = None
    index: str | None = None
    concurrently: bool = False
    not_null: bool = False
    server_default: bool = False
    type_change: bool = False
    new_name: str | None = None


def statements(sql: str) -> list[str]:
    """The statements of `sql`, without comments and with string literals blanked."""
    cleaned = _QUOTED.sub("''", _COMMENTS.sub(" ", sql))
    return [part.strip() for part in cleaned.split(";") if part.strip()]


def name(identifier: str) -> str:
    """`public."Orders"` -> `Orders`; `orders` -> `orders` (the table name the rules compare)."""
    last = identifier.split(".")[-1]
    return last[1:-1] if last.startswith('"') else last.lower()


def data_statements(sql: str) -> list[SqlData]:
    found: list[SqlData] = []
    for statement in statements(sql):
        found.extend(_data_in(statement))
    return found


def _data_in(statement: str) -> list[SqlData]:
    changes: list[SqlData] = []
    for match in _UPDATE.finditer(statement):
        if not _NOT_A_DML_UPDATE.search(statement[:match.start()]):
            changes.append(SqlData("update", name(match.group(1))))
    changes += [SqlData("delete", name(m.group(1))) for m in _DELETE.finditer(statement)]
    insert = _INSERT.search(statement)
    if insert and _SELECT.search(statement, insert.end()):
        changes.append(SqlData("insert-select", name(insert.group(1))))
    for kind, pattern in (("truncate", _TRUNCATE), ("merge", _MERGE)):
        match = pattern.search(statement)
        if match:
            changes.append(SqlData(kind, name(match.group(1))))
    if changes:
        return changes
    if _READS.search(statement) and _SELECT.search(statement):
        source = _FROM.search(statement)
        return [SqlData("select", name(source.group(1)) if source else None)]
    return []


def ddl_statements(sql: str) -> list[SqlDdl]:
    found: list[SqlDdl] = []
    for statement in statements(sql):
        index = _CREATE_INDEX.search(statement)
        if index:
            found.append(SqlDdl("create_index", name(index.group(3)), concurrently=bool(index.group(1)),
                                index=name(index.group(2)) if index.group(2) else None))
            continue
        drop = _DROP_TABLE.search(statement)
        if drop:
            found.append(SqlDdl("drop_table", name(drop.group(1))))
            continue
        alter = _ALTER_TABLE.search(statement)
        if alter:
            table = name(alter.group(1))
            found.extend(action for part in _top_level_split(alter.group(2)) if (action := _alter_action(table, part)))
    return found


def _alter_action(table: str, action: str) -> SqlDdl | None:
    action = action.strip()
    if match := _ACTION_DROP_COLUMN.search(action):
        return SqlDdl("drop_column", table, column=name(match.group(1)))
    if match := _ACTION_RENAME_TABLE.search(action):
        return SqlDdl("rename_table", table, new_name=name(match.group(1)))
    if match := _ACTION_RENAME_COLUMN.search(action):
        return SqlDdl("alter_column", table, column=name(match.group(1)), new_name=name(match.group(2)))
    if match := _ACTION_TYPE.search(action):
        return SqlDdl("alter_column", table, column=name(match.group(1)), type_change=True)
    if match := _ACTION_SET_NOT_NULL.search(action):
        return SqlDdl("alter_column", table, column=name(match.group(1)), not_null=True)
    if _ACTION_ADD_UNIQUE.search(action):
        return SqlDdl("create_unique_constraint", table)
    if match := _ACTION_ADD_COLUMN.search(action):
        definition = match.group(2)
        return SqlDdl("add_column", table, column=name(match.group(1)),
                      not_null=bool(re.search(r"\bNOT\s+NULL\b|\bPRIMARY\s+KEY\b", definition, re.IGNORECASE)),
                      server_default=bool(re.search(r"\bDEFAULT\b", definition, re.IGNORECASE)))
    return None


def _top_level_split(text: str) -> list[str]:
    """Split ALTER TABLE actions on the commas that are not inside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


# --- lock_timeout -----------------------------------------------------------------------

def lock_timeout_settings(sql: str) -> list[str]:
    """Each statement that changes lock_timeout (SET [LOCAL|SESSION], RESET, set_config),
    with what it does: "`SET lock_timeout = 0` turns it off"."""
    found = []
    for statement in _COMMENTS.sub(" ", sql).split(";"):
        shown = " ".join(statement.split())
        if match := _SET_LOCK_TIMEOUT.search(statement):
            found.append(f"`{shown}` {_timeout_effect(match.group(1))}")
        elif _RESET_LOCK_TIMEOUT.search(statement):
            found.append(f"`{shown}` {_SERVER_DEFAULT}")
        elif match := _SET_CONFIG_LOCK_TIMEOUT.search(statement):
            found.append(f"`{shown}` {_timeout_effect(match.group(1))}")
    return found


def _timeout_effect(value: str) -> str:
    value = " ".join(value.split())
    if value.upper() == "DEFAULT":
        return _SERVER_DEFAULT
    return "turns it off" if _NO_TIMEOUT.match(value) else f"sets it to {value}"


@dataclass(frozen=True)
class SqlLocking:
    """A statement that stops reads or writes of `table` (None: not named) while it
    waits for its lock; `head` is how it starts, for messages."""
    head: str
    table: str | None


def shop_locking_statements(sql: str) -> list[SqlLocking]:
    found = []
    for statement in statements(sql):
        locks, table = _locks_shop(statement)
        if locks:
            words = " ".join(statement.split())
            found.append(SqlLocking(words if len(words) <= 60 else words[:57] + "...", table))
    return found


def _locks_shop(statement: str) -> tuple[bool, str | None]:
    if alter := _ALTER_TABLE.search(statement):
        actions = _top_level_split(alter.group(2))
        return not all(_ACTION_VALIDATE.search(action) for action in actions), name(alter.group(1))
    if index := _CREATE_INDEX.search(statement):
        return not index.group(1), name(index.group(3))
    if lock := _LOCK_TABLE.search(statement):
        mode = " ".join((lock.group(2) or "ACCESS EXCLUSIVE").upper().split())
        return mode not in _SHOP_FRIENDLY_LOCKS, name(lock.group(1))
    if drop := _DROP_INDEX.search(statement):
        return not drop.group(1), None
    if reindex := _REINDEX.search(statement):
        return not reindex.group(1), None
    for pattern in (_LOCKING, _CREATE_TRIGGER):
        if match := pattern.search(statement):
            return True, name(match.group(1)) if match.group(1) else None
    return False, None
