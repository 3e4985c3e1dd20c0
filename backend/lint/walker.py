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

What it produces is in script.py, the value readers in ast_reading.py; this module is
the one visitor (module reading, then one walk per entry point), kept whole because
its cases share one context (batch blocks, gates, autocommit blocks).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path

from backend.lint import ast_reading, sql
from backend.lint.script import Bypass, DataStatement, FunctionInfo, Operation, RevisionScript

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
# The schema jobs' helpers (schedule_index builds later, concurrently: docs/index-jobs.md),
# read like the online ones.
INDEX_JOBS_MODULE = "backend.migrations.index_jobs"
HELPER_MODULES = (ONLINE_MODULE, INDEX_JOBS_MODULE)


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
    "schedule_index": _Helper("create_index", 1, "table", False),
    "unschedule_index": _Helper("drop_index", 1, "table", False),
}
_LOCK_TIMEOUT_HELPER = "lock_timeout"
# Calls that open a connection of the revision's own (not the migration's).
_ENGINE_FACTORIES = {"create_engine", "create_async_engine", "engine_from_config", "create_db_engine"}
_CONNECTION_OPENERS = {"connect", "raw_connection"}
_EXECUTE_METHODS = {"execute", "exec_driver_sql", "scalar", "scalars"}
_SQLALCHEMY_MODULES = {"sa", "sqlalchemy"}
_GATE = "require_backfill"


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
                                              ast_reading.is_empty(function))
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
            target, value = ast_reading.single_assignment(node)
            if target and isinstance(value, ast.Constant) and isinstance(value.value, str):
                constants[target] = value.value
        tables: dict[str, str] = {}
        for node in ast.walk(tree):
            target, value = ast_reading.single_assignment(node)
            if target and isinstance(value, ast.Call):
                table = ast_reading.table_constructor_name(value, constants)
                if table:
                    tables[target] = table
        module = cls(functions, constants, tables)
        for node in ast.walk(tree):
            module._read_import(node)
        return module

    def _read_import(self, node: ast.AST) -> None:
        """`from backend.migrations.online import set_not_null [as x]`, `from backend.migrations
        import online`, `import backend.migrations.online [as online]`."""
        if isinstance(node, ast.ImportFrom) and node.module in HELPER_MODULES and not node.level:
            self.online_names.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            self.online_modules.update(alias.asname or alias.name for alias in node.names
                                       if f"{node.module}.{alias.name}" in HELPER_MODULES)
        elif isinstance(node, ast.Import):
            self.online_modules.update(alias.asname or alias.name for alias in node.names
                                       if alias.name in HELPER_MODULES)

    def helper(self, call: ast.Call) -> str | None:
        """The online helper `call` calls (`set_not_null(...)`, `online.set_not_null(...)`), or None."""
        if isinstance(call.func, ast.Name):
            return self.online_names.get(call.func.id)
        if isinstance(call.func, ast.Attribute) and ast_reading.dotted(call.func.value) in self.online_modules:
            return call.func.attr
        return None


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
                and isinstance(node.value, ast.Call) and ast_reading.callee(node.value) == "Column":
            self._columns[node.targets[0].id] = node.value
        target, value = ast_reading.single_assignment(node)
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
            if ast_reading.callee(call) == "batch_alter_table" and isinstance(item.optional_vars, ast.Name):
                table = ast_reading.string(ast_reading.argument(call, 0, "table_name"), self.module.constants)
                inner = replace(inner, batch_tables=inner.batch_tables + ((item.optional_vars.id, table),))
            elif ast_reading.callee(call) == "autocommit_block":
                inner = replace(inner, in_autocommit_block=True)
            elif self.module.helper(call) == _LOCK_TIMEOUT_HELPER:
                seconds = ast_reading.argument(call, 0, "seconds")
                inner = replace(inner, without_lock_timeout=isinstance(seconds, ast.Constant) and seconds.value is None)
        for statement in node.body:
            self.visit(statement, inner)

    def _visit_call(self, call: ast.Call, context: _Context) -> None:
        name = ast_reading.callee(call)
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
        elif name in _EXECUTE_METHODS and call.args and not ast_reading.is_text_call(call.args[0]):
            self._sql_text(call, call.args[0], context, written_as=f"{ast_reading.describe_receiver(call)}.{name}(...)")
        self._children(call, context)
        if name == _GATE:
            self.gate_seen = True
        if isinstance(call.func, ast.Name) and call.func.id in self.module.functions:
            self.walk_function(self.module.functions[call.func.id], context)

    # --- schema operations ---

    def _schema_operation(self, call: ast.Call, name: str, context: _Context) -> None:
        receiver = ast_reading.receiver(call)
        in_batch, table = (context.batch_table(receiver.id) if isinstance(receiver, ast.Name)
                           else (False, None))
        if isinstance(receiver, ast.Name) and receiver.id == "op":
            shift = 0
            table = ast_reading.string(ast_reading.argument(call, _TABLE_ARG[name], _TABLE_KEYWORD.get(name, "table_name")),
                            self.module.constants)
        elif in_batch:
            shift = 1  # batch_op.add_column(column): no table argument
        else:
            return  # something else that happens to be called e.g. `add_column`
        written_as = f"{receiver.id}.{name}(...)"
        facts: dict = {}
        if name == "add_column":
            column = ast_reading.argument(call, 1 - shift, "column")
            if isinstance(column, ast.Name):
                column = self._columns.get(column.id, column)
            facts.update(ast_reading.column_facts(column, self.module.constants))
        elif name in ("drop_column", "alter_column"):
            facts["column"] = ast_reading.string(ast_reading.argument(call, 1 - shift, "column_name"), self.module.constants)
        if name in _INDEX_NAME_ARG:
            facts["index"] = ast_reading.string(ast_reading.argument(call, 0), self.module.constants)
            facts["concurrently"] = ast_reading.literal(ast_reading.keyword_value(call, "postgresql_concurrently")) is True
        if name == "alter_column":
            facts["not_null"] = ast_reading.literal(ast_reading.keyword_value(call, "nullable")) is False
            facts["type_change"] = ast_reading.keyword_value(call, "type_") is not None
            facts["new_name"] = ast_reading.string(ast_reading.keyword_value(call, "new_column_name"), self.module.constants) or (
                "?" if ast_reading.keyword_value(call, "new_column_name") is not None else None)
        if name == "rename_table":
            facts["new_name"] = ast_reading.string(ast_reading.argument(call, 1, "new_table_name"), self.module.constants) or "?"
        self._add_operation(name, call, table, context, written_as, **facts)

    def _helper_operation(self, call: ast.Call, helper: str, context: _Context) -> None:
        """An online helper, recorded as the Alembic operation it performs."""
        spec = _HELPERS[helper]
        table = ast_reading.string(ast_reading.argument(call, spec.table_arg, spec.table_keyword), self.module.constants)
        facts: dict = {"helper": helper}
        if helper == "add_column":
            column = ast_reading.argument(call, 1, "column")
            if isinstance(column, ast.Name):
                column = self._columns.get(column.id, column)
            facts.update(ast_reading.column_facts(column, self.module.constants))
        elif helper == "set_not_null":
            facts.update(column=ast_reading.string(ast_reading.argument(call, 1, "column"), self.module.constants), not_null=True)
        elif spec.operation in _INDEX_NAME_ARG:
            facts.update(index=ast_reading.string(ast_reading.argument(call, 0, "name"), self.module.constants), concurrently=True)
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
        name = ast_reading.callee(call)
        receiver = ast_reading.receiver(call)
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
        text = ast_reading.string(argument, self.module.constants)
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
        calls = list(ast_reading.chain(call))
        root = calls[-1]
        methods = {ast_reading.callee(c) for c in calls}
        kind, table = self._core_root(root)
        if kind is None:
            return False
        if kind == "select":
            table = _selected_table(call, self.module)
        if kind == "insert":
            if "from_select" not in methods:
                return False
            kind = "insert-select"
        self._add_data(kind, call, table, f"{ast_reading.describe_root(root)}")
        return True

    def _core_root(self, root: ast.Call) -> tuple[str | None, str | None]:
        name = ast_reading.callee(root)
        receiver = ast_reading.receiver(root)
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
            return ast_reading.table_constructor_name(node, self.module.constants)
        return None


def _is_engine_factory(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and ast_reading.callee(node) in _ENGINE_FACTORIES


def _selected_table(select: ast.Call, module: _Module) -> str | None:
    """The first table a `sa.select(orders.c.id, ...)` names, for the message."""
    for node in ast.walk(select):
        if isinstance(node, ast.Name) and node.id in module.tables:
            return module.tables[node.id]
    return None
