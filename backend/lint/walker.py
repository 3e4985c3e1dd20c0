"""Read a revision script with `ast` (never importing it) into what the rules need.

For `upgrade()` and `downgrade()` the walker lists, in source order:

- schema operations (`op.add_column(...)`, `batch_op.alter_column(...)` inside
  `with op.batch_alter_table("t") as batch_op:`, and their raw-SQL equivalents),
  each with its table, whether a `require_backfill(...)` gate came before it, and
  whether it runs inside `with op.get_context().autocommit_block():`;
- data statements: UPDATE / DELETE / INSERT ... SELECT / SELECT, written as SQL
  text (in `op.execute`, `sa.text`, `connection.execute`, ...) or as SQLAlchemy
  Core (`sa.update(t)`, `t.delete()`, `sa.insert(t).from_select(...)`, `sa.select(...)`);
- lock-timeout bypasses: a raw `SET lock_timeout`, a connection the revision opens
  itself, a statement that queues the shop inside `with lock_timeout(None):`.

The online helpers of `backend.migrations.online` (imported by name or called as
`online.create_index(...)`) are operations too, in Alembic's vocabulary
(`set_not_null` is an `alter_column(nullable=False)`), marked with `helper` so that
rules know they take their locks the safe way.

Helper functions of the same module called from `upgrade()` are walked where they
are called. Calls into other modules (the backfill helpers `schedule_backfill`,
`require_backfill`, `unschedule_backfill`) are opaque: what they read is theirs.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from backend.lint import sql

ENTRY_POINTS = ("upgrade", "downgrade")

# Alembic operations the rules look at, and the position of the table name in
# `op.<name>(...)` (batch operations take the table from their `with` block).
_TABLE_ARG = {
    "create_table": 0, "drop_table": 0, "add_column": 0, "drop_column": 0, "alter_column": 0,
    "create_index": 1, "create_unique_constraint": 1, "rename_table": 0,
    "drop_index": 1, "create_foreign_key": 1, "drop_constraint": 1, "create_check_constraint": 1,
    "create_primary_key": 1,
}
_TABLE_KEYWORD = {"create_foreign_key": "source_table"}  # else "table_name"
_INDEX_NAME_ARG = {"create_index": 0, "create_unique_constraint": 0, "drop_index": 0}
# Alembic operations whose lock stops the shop's reads or writes while it waits
# (index builds and drops only without CONCURRENTLY).
_QUEUES_SHOP = {"add_column", "drop_column", "alter_column", "drop_table", "rename_table", "create_index",
                "drop_index", "create_unique_constraint", "create_foreign_key", "drop_constraint",
                "create_check_constraint", "create_primary_key"}

ONLINE_MODULE = "backend.migrations.online"


@dataclass(frozen=True)
class _Helper:
    """An online helper: the Alembic operation it stands for, where its table is, and
    whether it takes a lock that queues the shop (briefly, under lock_timeout)."""
    operation: str
    table_arg: int
    table_keyword: str
    queues_shop: bool


_HELPERS = {
    "add_column": _Helper("add_column", 0, "table", True),
    "set_not_null": _Helper("alter_column", 0, "table", True),
    "create_index": _Helper("create_index", 1, "table", False),
    "drop_index": _Helper("drop_index", 1, "table", False),
    "add_unique_constraint": _Helper("create_unique_constraint", 1, "table", True),
    "add_foreign_key": _Helper("create_foreign_key", 1, "source", True),
}
_LOCK_TIMEOUT_HELPER = "lock_timeout"
# Calls that open a connection of the revision's own (not the migration's).
_ENGINE_FACTORIES = {"create_engine", "create_async_engine", "engine_from_config", "create_db_engine"}
_CONNECTION_OPENERS = {"connect", "raw_connection"}
_EXECUTE_METHODS = {"execute", "exec_driver_sql", "scalar", "scalars"}
_SQLALCHEMY_MODULES = {"sa", "sqlalchemy"}
_GATE = "require_backfill"


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


def parse_script(path: Path) -> tuple[RevisionScript, str]:
    """The revision's model and its source text (the acknowledgements are in the comments)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    module = _Module.read(tree)
    script = RevisionScript(path=path, revision=module.constants.get("revision"))
    for name in ENTRY_POINTS:
        function = module.functions.get(name)
        if function is None:
            continue
        script.functions[name] = FunctionInfo(name, function.lineno, function.end_lineno or function.lineno,
                                              _is_empty(function))
        walker = _FunctionWalker(module, name)
        walker.walk_function(function)
        script.operations.extend(walker.operations)
        script.data.extend(walker.data)
        script.bypasses.extend(walker.bypasses)
    return script, source


def revision_id(path: Path) -> str | None:
    """The `revision = "..."` of a script, read without importing it."""
    try:
        return _Module.read(ast.parse(path.read_text(encoding="utf-8"))).constants.get("revision")
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None


# --- the module: its functions, string constants and Core table variables ----------

@dataclass
class _Module:
    functions: dict[str, ast.FunctionDef]
    constants: dict[str, str]  # NAME = "literal" at module level
    tables: dict[str, str]  # variable -> table name, from `x = sa.table("name", ...)` anywhere
    online_names: dict[str, str] = field(default_factory=dict)  # local name -> helper of backend.migrations.online
    online_modules: set[str] = field(default_factory=set)  # names (dotted) bound to backend.migrations.online

    @classmethod
    def read(cls, tree: ast.Module) -> "_Module":
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        constants: dict[str, str] = {}
        for node in tree.body:
            target, value = _single_assignment(node)
            if target and isinstance(value, ast.Constant) and isinstance(value.value, str):
                constants[target] = value.value
        tables: dict[str, str] = {}
        for node in ast.walk(tree):
            target, value = _single_assignment(node)
            if target and isinstance(value, ast.Call):
                table = _table_constructor_name(value, constants)
                if table:
                    tables[target] = table
        module = cls(functions, constants, tables)
        for node in ast.walk(tree):
            module._read_import(node)
        return module

    def _read_import(self, node: ast.AST) -> None:
        """`from backend.migrations.online import set_not_null [as x]`, `from backend.migrations
        import online`, `import backend.migrations.online [as online]`."""
        if isinstance(node, ast.ImportFrom) and node.module == ONLINE_MODULE and not node.level:
            self.online_names.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            self.online_modules.update(alias.asname or alias.name for alias in node.names
                                       if f"{node.module}.{alias.name}" == ONLINE_MODULE)
        elif isinstance(node, ast.Import):
            self.online_modules.update(alias.asname or alias.name for alias in node.names
                                       if alias.name == ONLINE_MODULE)

    def helper(self, call: ast.Call) -> str | None:
        """The online helper `call` calls (`set_not_null(...)`, `online.set_not_null(...)`), or None."""
        if isinstance(call.func, ast.Name):
            return self.online_names.get(call.func.id)
        if isinstance(call.func, ast.Attribute) and _dotted(call.func.value) in self.online_modules:
            return call.func.attr
        return None


def _single_assignment(node: ast.AST) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id, node.value
    return None, None


def _table_constructor_name(call: ast.Call, constants: dict[str, str]) -> str | None:
    """"orders" for `sa.table("orders", ...)` / `sa.Table("orders", metadata, ...)`."""
    if _callee(call) in ("table", "Table") and call.args:
        return _string(call.args[0], constants)
    return None


def _callee(call: ast.Call) -> str | None:
    """The called name: `f` for `f(...)`, `m` for `x.m(...)`."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _dotted(node: ast.expr) -> str | None:
    """`backend.migrations.online` for that attribute chain, `online` for a name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _receiver(call: ast.Call) -> ast.expr | None:
    return call.func.value if isinstance(call.func, ast.Attribute) else None


def _string(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    """A literal string, a module constant, an f-string of those, or `op.f("...")`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append(_string(value.value, constants) or "{}")  # type: ignore[union-attr]
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string(node.left, constants), _string(node.right, constants)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.Call) and _callee(node) == "f" and node.args:
        return _string(node.args[0], constants)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _string(node.func.value, constants)  # "... {} ...".format(x): the template, as for f-strings
    return None


def _literal(node: ast.expr | None):
    try:
        return ast.literal_eval(node) if node is not None else None
    except (ValueError, SyntaxError, TypeError):
        return _NOT_LITERAL


_NOT_LITERAL = object()


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _argument(call: ast.Call, position: int, keyword: str | None = None) -> ast.expr | None:
    if keyword and (value := _keyword(call, keyword)) is not None:
        return value
    return call.args[position] if 0 <= position < len(call.args) else None


def _is_empty(function: ast.FunctionDef) -> bool:
    for statement in function.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and (
                isinstance(statement.value.value, str) or statement.value.value is Ellipsis):
            continue
        return False
    return True


def _chain(call: ast.Call) -> Iterator[ast.Call]:
    """`sa.update(t).where(...).values(...)` -> the calls from the outermost to `sa.update(t)`."""
    node: ast.expr = call
    while True:
        if isinstance(node, ast.Call):
            yield node
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return


# --- walking one entry point ----------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    batch_tables: tuple[tuple[str, str | None], ...] = ()  # (alias, table) of enclosing batch_alter_table
    in_autocommit_block: bool = False
    in_statement: bool = False  # inside a Core statement already recorded (its subqueries)
    without_lock_timeout: bool = False  # inside `with lock_timeout(None):`

    def batch_table(self, alias: str) -> tuple[bool, str | None]:
        for name, table in reversed(self.batch_tables):
            if name == alias:
                return True, table
        return False, None


class _FunctionWalker:
    def __init__(self, module: _Module, function: str):
        self.module = module
        self.function = function
        self.operations: list[Operation] = []
        self.data: list[DataStatement] = []
        self.gate_seen = False
        self._walking: set[str] = set()
        self._columns: dict[str, ast.Call] = {}  # name = sa.Column(...) in the function, for add_column(name)
        self._engines: dict[str, bool] = {}  # name bound to an engine -> made here by a factory (flagged there)
        self.bypasses: list[Bypass] = []

    def walk_function(self, node: ast.FunctionDef, context: _Context = _Context()) -> None:
        if node.name in self._walking:
            return
        self._walking.add(node.name)
        for statement in node.body:
            self.visit(statement, context)
        self._walking.discard(node.name)

    def visit(self, node: ast.AST, context: _Context) -> None:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Call) and _callee(node.value) == "Column":
            self._columns[node.targets[0].id] = node.value
        target, value = _single_assignment(node)
        if target and value is not None and self._is_engine(value):
            self._engines[target] = _is_engine_factory(value)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            self._visit_with(node, context)
        elif isinstance(node, ast.Call):
            self._visit_call(node, context)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return  # a nested definition runs only if called, which we cannot follow
        else:
            self._children(node, context)

    def _children(self, node: ast.AST, context: _Context) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child, context)

    def _visit_with(self, node: ast.With | ast.AsyncWith, context: _Context) -> None:
        inner = context
        for item in node.items:
            self.visit(item.context_expr, context)
            call = item.context_expr
            if not isinstance(call, ast.Call):
                continue
            if _callee(call) == "batch_alter_table" and isinstance(item.optional_vars, ast.Name):
                table = _string(_argument(call, 0, "table_name"), self.module.constants)
                inner = replace(inner, batch_tables=inner.batch_tables + ((item.optional_vars.id, table),))
            elif _callee(call) == "autocommit_block":
                inner = replace(inner, in_autocommit_block=True)
            elif self.module.helper(call) == _LOCK_TIMEOUT_HELPER:
                seconds = _argument(call, 0, "seconds")
                inner = replace(inner, without_lock_timeout=isinstance(seconds, ast.Constant) and seconds.value is None)
        for statement in node.body:
            self.visit(statement, inner)

    def _visit_call(self, call: ast.Call, context: _Context) -> None:
        name = _callee(call)
        if context.in_statement:  # a subquery of a statement already recorded
            self._children(call, context)
            return
        if self._core_statement(call):
            self._children(call, replace(context, in_statement=True))
            return
        self._own_connection(call)
        helper = self.module.helper(call)
        if helper in _HELPERS:
            self._helper_operation(call, helper, context)
        elif name in _TABLE_ARG:
            self._schema_operation(call, name, context)
        elif name in ("text", "DDL") and call.args:
            self._sql_text(call, call.args[0], context, written_as=f"{name}(...)")
        elif name in _EXECUTE_METHODS and call.args and not _is_text_call(call.args[0]):
            self._sql_text(call, call.args[0], context, written_as=f"{_describe_receiver(call)}.{name}(...)")
        self._children(call, context)
        if name == _GATE:
            self.gate_seen = True
        if isinstance(call.func, ast.Name) and call.func.id in self.module.functions:
            self.walk_function(self.module.functions[call.func.id], context)

    # --- schema operations ---

    def _schema_operation(self, call: ast.Call, name: str, context: _Context) -> None:
        receiver = _receiver(call)
        in_batch, table = (context.batch_table(receiver.id) if isinstance(receiver, ast.Name)
                           else (False, None))
        if isinstance(receiver, ast.Name) and receiver.id == "op":
            shift = 0
            table = _string(_argument(call, _TABLE_ARG[name], _TABLE_KEYWORD.get(name, "table_name")),
                            self.module.constants)
        elif in_batch:
            shift = 1  # batch_op.add_column(column): no table argument
        else:
            return  # something else that happens to be called e.g. `add_column`
        written_as = f"{receiver.id}.{name}(...)"
        facts: dict = {}
        if name == "add_column":
            column = _argument(call, 1 - shift, "column")
            if isinstance(column, ast.Name):
                column = self._columns.get(column.id, column)
            facts.update(_column_facts(column, self.module.constants))
        elif name in ("drop_column", "alter_column"):
            facts["column"] = _string(_argument(call, 1 - shift, "column_name"), self.module.constants)
        if name in _INDEX_NAME_ARG:
            facts["index"] = _string(_argument(call, 0), self.module.constants)
            facts["concurrently"] = _literal(_keyword(call, "postgresql_concurrently")) is True
        if name == "alter_column":
            facts["not_null"] = _literal(_keyword(call, "nullable")) is False
            facts["type_change"] = _keyword(call, "type_") is not None
            facts["new_name"] = _string(_keyword(call, "new_column_name"), self.module.constants) or (
                "?" if _keyword(call, "new_column_name") is not None else None)
        if name == "rename_table":
            facts["new_name"] = _string(_argument(call, 1, "new_table_name"), self.module.constants) or "?"
        self._add_operation(name, call, table, context, written_as, **facts)

    def _helper_operation(self, call: ast.Call, helper: str, context: _Context) -> None:
        """An online helper, recorded as the Alembic operation it performs."""
        spec = _HELPERS[helper]
        table = _string(_argument(call, spec.table_arg, spec.table_keyword), self.module.constants)
        facts: dict = {"helper": helper}
        if helper == "add_column":
            column = _argument(call, 1, "column")
            if isinstance(column, ast.Name):
                column = self._columns.get(column.id, column)
            facts.update(_column_facts(column, self.module.constants))
        elif helper == "set_not_null":
            facts.update(column=_string(_argument(call, 1, "column"), self.module.constants), not_null=True)
        elif spec.operation in _INDEX_NAME_ARG:
            facts.update(index=_string(_argument(call, 0, "name"), self.module.constants), concurrently=True)
        written_as = f"{ast.unparse(call.func)}(...)"
        self._add_operation(spec.operation, call, table, context, written_as, queues_shop=spec.queues_shop, **facts)

    def _add_operation(self, name: str, node: ast.AST, table: str | None, context: _Context,
                       written_as: str, queues_shop: bool | None = None, **facts) -> None:
        operation = Operation(
            operation=name, function=self.function, line=node.lineno, end_line=node.end_lineno or node.lineno,
            table=table, in_autocommit_block=context.in_autocommit_block, after_gate=self.gate_seen,
            written_as=written_as, **facts,
        )
        self.operations.append(operation)
        if queues_shop is None:
            queues_shop = name in _QUEUES_SHOP and not operation.concurrently
        if queues_shop and context.without_lock_timeout:
            self._add_bypass("no-timeout", node, written_as, table=table)

    def _add_bypass(self, kind: str, node: ast.AST, written_as: str, **details) -> None:
        self.bypasses.append(Bypass(kind, self.function, node.lineno, node.end_lineno or node.lineno,
                                    written_as, **details))

    # --- connections of the revision's own ---

    def _own_connection(self, call: ast.Call) -> None:
        """`create_engine(...)`, `x.connect()`, `engine.begin()`, `bind.engine.connect()`:
        statements on such a connection have no lock_timeout and no retry."""
        name = _callee(call)
        receiver = _receiver(call)
        if name in _ENGINE_FACTORIES:
            opens = True
        elif name in _CONNECTION_OPENERS or name == "begin":
            opens = ((name != "begin" or (receiver is not None and self._is_engine(receiver)))
                     and not self._made_here(receiver))
        else:
            opens = False
        if opens:
            self._add_bypass("own-connection", call, f"{ast.unparse(call.func)}(...)")

    def _is_engine(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self._engines
        if isinstance(node, ast.Attribute):
            return node.attr == "engine"
        return _is_engine_factory(node)

    def _made_here(self, receiver: ast.expr | None) -> bool:
        """An engine the revision created (that call is the finding already)."""
        if isinstance(receiver, ast.Name):
            return self._engines.get(receiver.id, False)
        return receiver is not None and _is_engine_factory(receiver)

    # --- SQL text ---

    def _sql_text(self, call: ast.Call, argument: ast.expr, context: _Context, written_as: str) -> None:
        text = _string(argument, self.module.constants)
        if text is None:
            return
        for change in sql.ddl_statements(text):
            self._add_operation(change.operation, call, change.table, context, f"SQL in {written_as}",
                                queues_shop=False,  # told below, once per statement
                                column=change.column, index=change.index, concurrently=change.concurrently,
                                not_null=change.not_null,
                                server_default=change.server_default, type_change=change.type_change,
                                new_name=change.new_name)
        for setting in sql.lock_timeout_settings(text):
            self._add_bypass("set-timeout", call, f"SQL in {written_as}", detail=setting)
        if context.without_lock_timeout:
            for locking in sql.shop_locking_statements(text):
                self._add_bypass("no-timeout", call, f"SQL `{locking.head}` in {written_as}", table=locking.table)
        for statement in sql.data_statements(text):
            verb = "INSERT ... SELECT" if statement.kind == "insert-select" else statement.kind.upper()
            self._add_data(statement.kind, call, statement.table, f"SQL {verb} in {written_as}")

    def _add_data(self, kind: str, node: ast.AST, table: str | None, written_as: str) -> None:
        self.data.append(DataStatement(kind, self.function, node.lineno, node.end_lineno or node.lineno,
                                       table, written_as))

    # --- SQLAlchemy Core statements ---

    def _core_statement(self, call: ast.Call) -> bool:
        """Record `sa.update(t)...`, `t.delete()`, `sa.insert(t).from_select(...)`,
        `sa.select(...)` once, at the outermost call of the chain."""
        calls = list(_chain(call))
        root = calls[-1]
        methods = {_callee(c) for c in calls}
        kind, table = self._core_root(root)
        if kind is None:
            return False
        if kind == "select":
            table = _selected_table(call, self.module)
        if kind == "insert":
            if "from_select" not in methods:
                return False
            kind = "insert-select"
        self._add_data(kind, call, table, f"{_describe_root(root)}")
        return True

    def _core_root(self, root: ast.Call) -> tuple[str | None, str | None]:
        name = _callee(root)
        receiver = _receiver(root)
        if name not in ("update", "delete", "insert", "select"):
            return None, None
        if isinstance(root.func, ast.Name) or (isinstance(receiver, ast.Name) and receiver.id in _SQLALCHEMY_MODULES):
            return name, self._table_of(root.args[0] if root.args else None)
        # orders.update() / orders.select() on a Core table variable or sa.table(...)
        table = self._table_of(receiver)
        if table is not None:
            return name, table
        return None, None

    def _table_of(self, node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Name):
            return self.module.tables.get(node.id)
        if isinstance(node, ast.Call):
            return _table_constructor_name(node, self.module.constants)
        return None


def _is_engine_factory(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _callee(node) in _ENGINE_FACTORIES


def _selected_table(select: ast.Call, module: _Module) -> str | None:
    """The first table a `sa.select(orders.c.id, ...)` names, for the message."""
    for node in ast.walk(select):
        if isinstance(node, ast.Name) and node.id in module.tables:
            return module.tables[node.id]
    return None


def _is_text_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _callee(node) in ("text", "DDL")


def _describe_receiver(call: ast.Call) -> str:
    receiver = _receiver(call)
    try:
        return ast.unparse(receiver) if receiver is not None else "?"
    except Exception:  # pragma: no cover - unparse handles every expression
        return "?"


def _describe_root(root: ast.Call) -> str:
    return f"{ast.unparse(root.func)}(...)"


def _column_facts(node: ast.expr | None, constants: dict[str, str]) -> dict:
    """Name, NOT NULL and server default of an `sa.Column(...)` argument."""
    if not (isinstance(node, ast.Call) and _callee(node) == "Column"):
        return {"column": None}
    name = _string(node.args[0], constants) if node.args else _string(_keyword(node, "name"), constants)
    nullable = _literal(_keyword(node, "nullable"))
    primary_key = _literal(_keyword(node, "primary_key"))
    default = _keyword(node, "server_default")
    return {
        "column": name,
        "not_null": nullable is False or (primary_key is True and nullable is not True),
        "server_default": default is not None and _literal(default) is not None,
    }
