"""Reading values out of a revision script's syntax tree without running it: names,
dotted paths, string literals (constants, f-strings, `op.f(...)`), keyword
arguments, call chains, `sa.Column(...)` facts. Pure functions of `ast` nodes."""
from __future__ import annotations

import ast
from typing import Iterator


def single_assignment(node: ast.AST) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id, node.value
    return None, None


def table_constructor_name(call: ast.Call, constants: dict[str, str]) -> str | None:
    """"orders" for `sa.table("orders", ...)` / `sa.Table("orders", metadata, ...)`."""
    if callee(call) in ("table", "Table") and call.args:
        return string(call.args[0], constants)
    return None


def callee(call: ast.Call) -> str | None:
    """The called name: `f` for `f(...)`, `m` for `x.m(...)`."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def dotted(node: ast.expr) -> str | None:
    """`backend.migrations.online` for that attribute chain, `online` for a name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def receiver(call: ast.Call) -> ast.expr | None:
    return call.func.value if isinstance(call.func, ast.Attribute) else None


def string(node: ast.expr | None, constants: dict[str, str]) -> str | None:
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
                parts.append(string(value.value, constants) or "{}")  # type: ignore[union-attr]
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = string(node.left, constants), string(node.right, constants)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.Call) and callee(node) == "f" and node.args:
        return string(node.args[0], constants)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return string(node.func.value, constants)  # "... {} ...".format(x): the template, as for f-strings
    return None


def literal(node: ast.expr | None):
    try:
        return ast.literal_eval(node) if node is not None else None
    except (ValueError, SyntaxError, TypeError):
        return NOT_LITERAL


NOT_LITERAL = object()


def keyword_value(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def argument(call: ast.Call, position: int, keyword: str | None = None) -> ast.expr | None:
    if keyword and (value := keyword_value(call, keyword)) is not None:
        return value
    return call.args[position] if 0 <= position < len(call.args) else None


def is_empty(function: ast.FunctionDef) -> bool:
    for statement in function.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and (
                isinstance(statement.value.value, str) or statement.value.value is Ellipsis):
            continue
        return False
    return True


def chain(call: ast.Call) -> Iterator[ast.Call]:
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


def is_text_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and callee(node) in ("text", "DDL")


def describe_receiver(call: ast.Call) -> str:
    node = receiver(call)
    try:
        return ast.unparse(node) if node is not None else "?"
    except Exception:  # pragma: no cover - unparse handles every expression
        return "?"


def describe_root(root: ast.Call) -> str:
    return f"{ast.unparse(root.func)}(...)"


def column_facts(node: ast.expr | None, constants: dict[str, str]) -> dict:
    """Name, NOT NULL and server default of an `sa.Column(...)` argument."""
    if not (isinstance(node, ast.Call) and callee(node) == "Column"):
        return {"column": None}
    name = string(node.args[0], constants) if node.args else string(keyword_value(node, "name"), constants)
    nullable = literal(keyword_value(node, "nullable"))
    primary_key = literal(keyword_value(node, "primary_key"))
    default = keyword_value(node, "server_default")
    return {
        "column": name,
        "not_null": nullable is False or (primary_key is True and nullable is not True),
        "server_default": default is not None and literal(default) is not None,
    }
