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
