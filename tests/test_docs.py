"""The docs check: README.md and docs/*.md name only things that exist.

For each page:
- every relative link (`[text](path#anchor)`) and every path in backticks under one
  of the project's rooms (`backend/...`, `docs/...`, `bench/...`) points at an
  existing file, and at an existing heading when an anchor is given;
- every dotted module in backticks (`backend.migrations.online`, `worker.tasks.recover`),
  every `from <module of ours> import <names>` in an example, every
  `python -m <module>` of ours and every `gunicorn 'module:factory()'` names a file
  that exists, and a trailing name is defined in that module;
- every `--flag` is an option of one of our command lines (read from the click and
  argparse definitions in the source, so a renamed option fails here), or belongs to
  a tool listed in OTHER_TOOLS_FLAGS;
- every UPPER_CASE_NAME is an environment variable the code reads (a string literal
  in backend/, worker/, alembic/, bench/ or a script; a key in docker-compose.yml; a
  variable the Makefile or the test harness reads), a module-level constant of that
  code (`ALLOWED_TRANSITIONS`), or is in NOT_OURS.

The checks read the source with `ast` and never import it, so they are fast and
need no database. A page that fails says which line names what.
"""
from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_ROOMS = ("backend", "worker", "alembic", "bench")
PATH_ROOMS = ("backend", "docs", "worker", "alembic", "bench", "tests", ".ci")
MODULE_ROOMS = ("backend", "worker", "bench", "tests")

# Flags the pages quote from other tools' command lines (tool: flags).
OTHER_TOOLS_FLAGS = {
    "alembic": {"--sql"},
    "celery": {"--concurrency", "--loglevel", "--schedule", "--timeout", "--max-tasks-per-child"},
    "docker compose": {"--profile"},
    "docker compose": {"--profile"},
    "gunicorn": {"--bind", "--workers"},
    "pytest / pytest-xdist": {"--dist"},
    "flask": {"--app"},
    "psql": {"--single-transaction"},
    "systemctl": {"--now"},
    "py-spy": {"--idle", "--subprocesses"},
    "redis-server": {"--daemonize", "--save", "--appendonly"},
}
# Names with an underscore in upper case that are not environment variables of ours
# (one-word names such as CI, PATH or HOSTNAME are never taken for settings).
NOT_OURS = {
    "ON_ERROR_STOP": "a psql variable",
}

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
FLAG = re.compile(r"(?<![\w/-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
ENV_NAME = re.compile(r"(?<![\w.-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w(])")
PYTHON_M = re.compile(r"python3?\s+-m\s+([A-Za-z_][\w.]*)")
FROM_IMPORT = re.compile(r"^\s*from\s+([A-Za-z_][\w.]*)\s+import\s+([\w\s,]+?)\s*(?:#.*)?$")
APP_TARGET = re.compile(r"gunicorn\b.*?'([A-Za-z_][\w.]*):([A-Za-z_]\w*)\(")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@dataclass(frozen=True)
class Known:
    """What exists: our command-line flags and the environment variables we read."""

    flags: frozenset[str]
    environment: frozenset[str]
    constants: frozenset[str]  # module-level UPPER_CASE names (ALLOWED_TRANSITIONS, STALL_SECONDS)


# --- what exists ------------------------------------------------------------------------

def _python_files(*rooms: str) -> list[Path]:
    files = [path for room in rooms for path in sorted((ROOT / room).rglob("*.py"))]
    return [path for path in files if "__pycache__" not in path.parts]


def _entry_scripts() -> list[Path]:
    return sorted(ROOT.glob("*.py"))


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def flags_defined_in(source: str) -> set[str]:
    """Long options declared by click (`option`), argparse (`add_argument`) and
    pytest (`addoption`) calls; `--migrate/--no-migrate` gives both."""
    flags = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _call_name(node) in ("option", "add_argument", "addoption"):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    flags.update(part.strip() for part in arg.value.split("/") if part.strip().startswith("--"))
    return flags


def names_in_code(source: str) -> set[str]:
    """UPPER_CASE string literals: the names the code reads from the environment."""
    return {node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value)}


def names_read_by_tests(source: str) -> set[str]:
    """Names the test harness reads: `os.environ.get(NAME)`, `os.getenv(NAME)` or
    `os.environ[NAME]`, NAME a literal or a module constant holding one. (Names the
    tests only set, for a subprocess, do not count: the code must read them.)"""
    tree = ast.parse(source)
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}

    def literal(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in ("get", "getenv") and node.args:
            names.add(literal(node.args[0]))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            names.add(literal(node.slice))
    return {name for name in names if name and ENV_NAME.fullmatch(name)}


def settings_read(source: str) -> set[str]:
    """The environment variables a settings parser reads: `env.get(NAME)`,
    `os.environ.get(NAME)`, `os.getenv(NAME)`, `environ[NAME]`, or a helper called
    with the mapping and the name (`_number(env, NAME, ...)`)."""
    def is_mapping(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("env", "environ")) or \
            (isinstance(node, ast.Attribute) and node.attr == "environ")

    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            receiver_is_env = isinstance(func, ast.Attribute) and func.attr == "get" and is_mapping(func.value)
            if receiver_is_env or _call_name(node) == "getenv" or any(is_mapping(arg) for arg in node.args):
                names.update(arg.value for arg in node.args
                             if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_mapping(node.value):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                names.add(node.slice.value)
    return {name for name in names if ENV_NAME.fullmatch(name)}


def constants_defined_in(source: str) -> set[str]:
    """Module-level UPPER_CASE names a page may quote as code."""
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names.update(target.id for target in targets if isinstance(target, ast.Name) and ENV_NAME.fullmatch(target.id))
    return names


def compose_variables(text: str) -> set[str]:
    """Keys and ${...} references of docker-compose.yml."""
    keys = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*):", text, re.MULTILINE))
    return keys | set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))


def makefile_variables(text: str) -> set[str]:
    """Variables a `make` command line may set (`NAME ?= default`)."""
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=", text, re.MULTILINE))


@lru_cache(maxsize=None)
def known() -> Known:
    code = _python_files(*CODE_ROOMS) + _entry_scripts()
    flags = set().union(*(flags_defined_in(path.read_text()) for path in code + _python_files("tests")))
    environment = set().union(*(names_in_code(path.read_text()) for path in code))
    environment |= set().union(*(names_read_by_tests(path.read_text()) for path in _python_files("tests")))
    environment |= compose_variables((ROOT / "docker-compose.yml").read_text())
    environment |= makefile_variables((ROOT / "Makefile").read_text())
    constants = set().union(*(constants_defined_in(path.read_text()) for path in code))
    return Known(frozenset(flags), frozenset(environment), frozenset(constants))


# --- what a page names ------------------------------------------------------------------

def heading_anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered -1, -2..."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line, _ in prose_lines(text):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1)).lower()
        slug = "".join(ch for ch in title if ch in " -_" or unicodedata.category(ch)[0] in "LN").replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def prose_lines(text: str) -> list[tuple[str, int]]:
    """(line, number) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((line, number))
    return lines


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_problem(dotted: str) -> str | None:
    """None when `dotted` is a module of ours, or a module and a name defined in it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        path = _module_file(parts[:cut])
        if path is None:
            continue
        rest = parts[cut:]
        if not rest:
            return None
        defined = re.search(rf"^(?:\s*(?:async\s+)?def|\s*class)\s+{re.escape(rest[0])}\b|^{re.escape(rest[0])}\s*[:=]",
                            path.read_text(), re.MULTILINE)
        return None if defined else f"{'.'.join(rest)} is not defined in {path.relative_to(ROOT)}"
    return "no such module"


def _link_problem(page: Path, text: str, target: str) -> str | None:
    path_part, _, anchor = target.partition("#")
    if not path_part:
        return None if anchor in heading_anchors(text) else f"has no heading #{anchor}"
    destination = (page.parent / path_part).resolve()
    if not destination.exists():
        return "points nowhere"
    if anchor and destination.suffix == ".md" and anchor not in heading_anchors(destination.read_text()):
        return f"has no heading #{anchor}"
    return None


def _path_in_span(span: str) -> str | None:
    """A repository path named in backticks (`backend/cli/`, `tests/x.py::test_y`), or None."""
    span = span.strip().split("::")[0]
    span = re.sub(r":\d+$", "", span)
    if not re.fullmatch(r"[\w.-]+(?:/[\w.-]*)+", span) or span.split("/")[0] not in PATH_ROOMS:
        return None
    return span


def problems(page: Path, text: str, facts: Known) -> list[str]:
    """Everything on the page that names something that does not exist, as
    `page:line: what`."""
    name = str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name
    found: list[str] = []
    for line, number in prose_lines(text):
        for target in LINK.findall(line):
            if not SCHEME.match(target) and (problem := _link_problem(page, text, target)):
                found.append(f"{name}:{number}: link {target} {problem}")
        for _, span in CODE_SPAN.findall(line):
            if (path := _path_in_span(span)) and not (ROOT / path).exists():
                found.append(f"{name}:{number}: path {path} does not exist")
            elif DOTTED.fullmatch(span.strip()) and span.split(".")[0] in MODULE_ROOMS:
                if problem := module_problem(span.strip()):
                    found.append(f"{name}:{number}: module {span.strip()}: {problem}")
    other_flags = set().union(*OTHER_TOOLS_FLAGS.values())
    for number, line in enumerate(text.splitlines(), 1):
        if (imported := FROM_IMPORT.match(line)) and imported.group(1).split(".")[0] in MODULE_ROOMS:
            for imported_name in imported.group(2).split(","):
                dotted = f"{imported.group(1)}.{imported_name.split()[0]}"
                if problem := module_problem(dotted):
                    found.append(f"{name}:{number}: import {dotted}: {problem}")
        for module, factory in APP_TARGET.findall(line):
            if problem := module_problem(f"{module}.{factory}"):
                found.append(f"{name}:{number}: gunicorn '{module}:{factory}()': {problem}")
        for module in PYTHON_M.findall(line):
            if module.split(".")[0] in MODULE_ROOMS and (problem := module_problem(module)):
                found.append(f"{name}:{number}: python -m {module}: {problem}")
        for flag in FLAG.findall(line):
            if flag not in facts.flags and flag not in other_flags:
                found.append(f"{name}:{number}: flag {flag} is no option of our command lines")
        for variable in ENV_NAME.findall(line):
            if variable not in facts.environment | facts.constants and variable not in NOT_OURS:
                found.append(f"{name}:{number}: {variable} is not read by the code")
    return found


# --- the tests --------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_page_names_only_what_exists(page):
    assert problems(page, page.read_text(), known()) == []


def test_every_docs_page_is_linked_from_the_readme_and_the_index():
    readme = (ROOT / "README.md").read_text()
    index = (ROOT / "docs" / "README.md").read_text()
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
            assert f"({page.name}" in index, f"docs/README.md does not link {page.name}"


def test_every_setting_the_code_reads_is_documented():
    """The other direction: a variable read by a settings parser in backend/, worker/,
    alembic/, bench/ or an entry script appears in docs/configuration.md."""
    documented = (ROOT / "docs" / "configuration.md").read_text()
    code = _python_files(*CODE_ROOMS) + _entry_scripts()
    read = {(name, str(path.relative_to(ROOT))) for path in code for name in settings_read(path.read_text())}
    missing = sorted(f"{name} (read in {where})" for name, where in read if f"`{name}`" not in documented)
    assert missing == [], "document these in docs/configuration.md: " + ", ".join(missing)


def test_what_exists_is_read_from_the_code():
    facts = known()
    assert {"--batched", "--rehearse", "--backup", "--per-row", "--orders", "--soak-minutes", "--no-migrate"} <= facts.flags
    assert {"DATABASE_URL", "BACKFILL_LEASE_SECONDS", "MIGRATION_LOCK_TRIES", "ADMIN_API_TOKEN",
            "TEST_POSTGRES_URL", "DEMO_ORDERS"} <= facts.environment


def test_a_page_naming_what_does_not_exist_fails(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "fake.md"
    text = "\n".join([
        "# Fake",
        "[fine](other.md#a-section) and [fine too](#fake), `backend/backfill/`, `backend.migrations.online`",
        "[gone](missing.md) and [no heading](other.md#nowhere)",
        "`backend/no_such_room/`, `backend.no_such_module`, `backend.migrations.online.no_such_helper`",
        "```bash",
        "python run_migrations.py --batched --no-such-flag   # BACKFILL_NO_SUCH_SETTING=1",
        "python -m bench.no_such_tool",
        "celery -A worker worker --concurrency 2; export DATABASE_URL CI",
        "gunicorn 'wsgi:create_app()'; gunicorn --workers 3 'wsgi:no_such_factory()'",
        "from backend.backfill.definition import RowBackfill, NoSuchBackfill   # a comment",
        "```",
    ])
    found = problems(page, text, known())
    assert found == [
        "fake.md:3: link missing.md points nowhere",
        "fake.md:3: link other.md#nowhere has no heading #nowhere",
        "fake.md:4: path backend/no_such_room/ does not exist",
        "fake.md:4: module backend.no_such_module: no_such_module is not defined in backend/__init__.py",
        "fake.md:4: module backend.migrations.online.no_such_helper: no_such_helper is not defined in "
        "backend/migrations/online.py",
        "fake.md:6: flag --no-such-flag is no option of our command lines",
        "fake.md:6: BACKFILL_NO_SUCH_SETTING is not read by the code",
        "fake.md:7: python -m bench.no_such_tool: no_such_tool is not defined in bench/__init__.py",
        "fake.md:9: gunicorn 'wsgi:no_such_factory()': no_such_factory is not defined in wsgi.py",
        "fake.md:10: import backend.backfill.definition.NoSuchBackfill: NoSuchBackfill is not defined in "
        "backend/backfill/definition.py",
    ]


def test_flags_and_names_are_read_from_click_argparse_and_environment_lookups():
    source = '\n'.join([
        '@click.option("--migrate/--no-migrate", default=True)',
        'def main(): parser.add_argument("--rows", type=int); os.environ.get("SHOP_SETTING")',
        'VARIABLE = "HARNESS_SETTING"',
        'def test(): return os.environ.get(VARIABLE), os.environ["OTHER_SETTING"], {"SET_ONLY": "1"}',
    ])
    assert flags_defined_in(source) == {"--migrate", "--no-migrate", "--rows"}
    assert names_in_code(source) == {"SHOP_SETTING", "HARNESS_SETTING", "OTHER_SETTING", "SET_ONLY"}
    assert names_read_by_tests(source) == {"SHOP_SETTING", "HARNESS_SETTING", "OTHER_SETTING"}
    assert constants_defined_in(source + "\nLIMIT_VALUE: int = 3\ndef f():\n    LOCAL_NAME = 1") == {"LIMIT_VALUE"}
    parser = 'def from_env(env): return env.get("A_SETTING"), _number(env, "B_SETTING", 1), os.environ["C_SETTING"]'
    assert settings_read(parser + '\nos.environ["SET_HERE"] = "1"; print("NOT_READ")') == {
        "A_SETTING", "B_SETTING", "C_SETTING"}
    assert heading_anchors("# Upgrade stalls (`python -m bench.upgrade`)\n## Results\n## Results\n") == {
        "upgrade-stalls-python--m-benchupgrade", "results", "results-1"}
