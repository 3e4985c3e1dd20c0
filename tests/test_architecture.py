"""The arrows between the rooms, read from the source with `ast` (nothing is imported):

- no import cycle among backend/ modules (module-level imports; those under
  `if TYPE_CHECKING:` are for type checkers only and do not count);
- nothing under backend/ imports worker/ (the entry points hand backend/ a dispatcher);
- the engine, backend/backfill/, imports neither Flask nor Celery nor the rooms built
  on it (backend.web, backend.cli, backend.migrations);
- settings are read from the environment in one place, Config.from_env.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE_MUST_NOT_IMPORT = ("flask", "celery", "worker", "backend.web", "backend.cli", "backend.migrations")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports, as a dotted module name (or module.attribute)
    line: int
    top_level: bool  # at module level, outside `if TYPE_CHECKING:`


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every import statement of a module, marked top-level or not."""
    found: list[Import] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, child.lineno, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from a import b` may import the module a.b or the name b of a: both count as a.b,
                # which resolves to a.b when that is a module and to a otherwise.
                found.extend(Import(module, f"{base}.{alias.name}", child.lineno, top_level) for alias in child.names)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for part in child.body:
                    visit_block(part, False)
                for part in child.orelse:
                    visit_block(part, top_level)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            else:
                visit(child, top_level)

    def visit_block(node: ast.AST, top_level: bool) -> None:
        wrapper = ast.Module(body=[node], type_ignores=[])
        visit(wrapper, top_level)

    visit(ast.parse(source), True)
    return found


def python_files(*rooms: str) -> list[Path]:
    return sorted(path for room in rooms for path in (ROOT / room).rglob("*.py") if "__pycache__" not in path.parts)


def all_imports(*rooms: str) -> tuple[set[str], list[Import]]:
    modules, imports = set(), []
    for path in python_files(*rooms):
        name = module_name(path)
        modules.add(name)
        imports += imports_of(path.read_text(), name, is_package=path.name == "__init__.py")
    return modules, imports


def resolve(target: str, modules: set[str]) -> str | None:
    """The module among `modules` that `target` names (a.b.c -> a.b.c, else a.b, else a)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph(modules: set[str], imports: list[Import]) -> dict[str, set[str]]:
    """Module -> the modules it imports at module level."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for imported in imports:
        if not imported.top_level:
            continue
        target = resolve(imported.target, modules)
        if target is None or target == imported.module:
            continue
        graph[imported.module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _names(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


# --- the rules ---------------------------------------------------------------------------

def test_no_import_cycle_among_backend_modules():
    modules, imports = all_imports("backend")
    assert cycles(import_graph(modules, imports)) == []


def test_nothing_under_backend_imports_worker():
    _, imports = all_imports("backend")
    found = [f"{i.module}:{i.line} imports {i.target}" for i in imports if _names(i.target, "worker")]
    assert found == []


def test_the_engine_imports_neither_flask_nor_celery_nor_the_rooms_built_on_it():
    _, imports = all_imports("backend/backfill")
    found = [f"{i.module}:{i.line} imports {i.target}" for i in imports
             if any(_names(i.target, forbidden) for forbidden in ENGINE_MUST_NOT_IMPORT)]
    assert found == []


def test_worker_modules_parse_and_import_backend_only_through_its_engine_and_config():
    """worker/ is thin: it may use the engine, the configuration, the database glue, the
    logging set-up and the metrics (its exporter, the counters of its tasks)."""
    _, imports = all_imports("worker")
    allowed = ("backend.backfill", "backend.config", "backend.db", "backend.logs", "backend.metrics")
    found = [f"{i.module}:{i.line} imports {i.target}" for i in imports
             if _names(i.target, "backend") and not any(_names(i.target, ok) for ok in allowed)]
    assert found == []


# Where the environment may be read. Settings are read once, by Config.from_env; the
# others read no setting of ours.
READS_THE_ENVIRONMENT = {
    "backend/config.py": "Config.from_env: every setting, once",
    "backend/migrations/safety/databases.py": "hands the environment to pg_dump and psql",
    "backend/metrics/exposition.py": "PROMETHEUS_MULTIPROC_DIR, which prometheus_client itself reads",
    "backend/logs.py": "LOG_FORMAT for env.py's logging, set up before the configuration is read",
}


def environment_reads(source: str) -> list[int]:
    """Lines that touch os.environ or call os.getenv / getenv."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(alias.name in ("environ", "getenv") for alias in node.names):
            lines.append(node.lineno)
    return sorted(lines)


def test_settings_are_read_from_the_environment_in_one_place():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in python_files("backend", "worker")
             if str(path.relative_to(ROOT)) not in READS_THE_ENVIRONMENT
             for line in environment_reads(path.read_text())]
    assert found == []


# --- the checks check --------------------------------------------------------------------

def test_a_cycle_is_found_and_type_checking_imports_do_not_count():
    sources = {
        "pkg.a": "from pkg import b\n",
        "pkg.b": "import pkg.c\n",
        "pkg.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import thing\n"
                 "def later():\n    from pkg import a\n",
        "pkg.d": "from . import e\n",
        "pkg.e": "from .d import x\n",
    }
    modules = set(sources) | {"pkg"}
    imports = [i for name, source in sources.items() for i in imports_of(source, name)]
    assert cycles(import_graph(modules, imports)) == [["pkg.d", "pkg.e"]]
    late = [i for i in imports if i.module == "pkg.c"]
    assert [(i.target, i.top_level) for i in late] == [("typing.TYPE_CHECKING", True), ("pkg.a.thing", False),
                                                       ("pkg.a", False)]


def test_environment_reads_are_found():
    assert environment_reads("import os\nx = os.environ.get('A')\ny = os.getenv('B')\n") == [2, 3]
    assert environment_reads("from os import environ\n") == [1]
    assert environment_reads("env = {'A': '1'}\nenv.get('A')\n") == []


def test_a_forbidden_import_inside_a_function_is_found():
    imports = imports_of("def dispatch():\n    from worker.tasks import dispatch\n", "backend.x")
    assert [(i.target, i.top_level) for i in imports] == [("worker.tasks.dispatch", False)]
