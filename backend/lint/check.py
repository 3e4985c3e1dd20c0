"""Lint revision scripts: `python create_migration.py check [REVISION|FILE ...]`.

Scripts are read with `ast`, never imported: a revision's module-level code does
not run, and a file that Alembic could not even load is still checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import click

from backend.config import PROJECT_ROOT
from backend.migrations.errors import CommandFailed
from backend.lint.acks import read_comments
from backend.lint.report import Finding, LintResult, ScriptReport
from backend.lint.rules import ACKNOWLEDGEABLE, RULES, RULES_BY_ID, advice
from backend.lint.walker import parse_script, revision_id

VERSIONS_DIR = PROJECT_ROOT / "alembic" / "versions"


class LintTargetError(CommandFailed):
    """A revision or file to check does not exist or cannot be parsed."""


def lint_script(path: Path) -> ScriptReport:
    try:
        script, source = parse_script(path)
    except SyntaxError as exc:
        raise LintTargetError(f"cannot parse {path}: {exc.msg} (line {exc.lineno})") from None
    comments = read_comments(source, ACKNOWLEDGEABLE, set(RULES_BY_ID))
    report = ScriptReport(path, script.revision)
    used: set[int] = set()
    for rule in RULES:
        for violation in rule.check(script):
            acks = [ack for ack in comments.for_statement(violation.line, violation.end_line)
                    if violation.rule_id in ack.rule_ids]
            used.update(id(ack) for ack in acks)
            report.findings.append(Finding(violation.rule_id, path, violation.line, violation.message,
                                           acks[0] if acks else None))
    for bad in comments.bad:
        report.findings.append(Finding("M010", path, bad.line, bad.problem))
    report.unused = [ack for ack in comments.acknowledgements if id(ack) not in used]
    report.advice = list(advice(script))
    return report


def lint_paths(paths: Iterable[Path]) -> LintResult:
    return LintResult([lint_script(path) for path in paths])


def revision_files(targets: Iterable[str] = (), versions_dir: Path = VERSIONS_DIR) -> list[Path]:
    """Every script in alembic/versions/ (no targets), else each target: a file, a
    directory of scripts, or a revision id (or a unique prefix of one)."""
    targets = list(targets)
    if not targets:
        return _scripts_in(versions_dir)
    found: list[Path] = []
    by_id: dict[str, Path] | None = None
    for target in targets:
        if not target.strip():
            raise LintTargetError("an empty argument: give a revision id, a revision script or a directory of them")
        path = Path(target)
        if path.is_dir():
            scripts = [script for script in _scripts_in(path) if revision_id(script)]
            if not scripts:
                raise LintTargetError(f"no Alembic revision scripts in {target}")
            found.extend(scripts)
        elif path.is_file():
            found.append(path.resolve())
        else:
            by_id = by_id if by_id is not None else _by_revision_id(versions_dir)
            found.append(_find_revision(target, by_id))
    return list(dict.fromkeys(found))


def _scripts_in(directory: Path) -> list[Path]:
    return sorted(path.resolve() for path in directory.glob("*.py") if not path.name.startswith("__"))


def _by_revision_id(versions_dir: Path) -> dict[str, Path]:
    return {rev: path for path in _scripts_in(versions_dir) if (rev := revision_id(path))}


def _find_revision(target: str, by_id: dict[str, Path]) -> Path:
    if target in by_id:
        return by_id[target]
    matches = [rev for rev in by_id if rev.startswith(target)]
    if len(matches) == 1:
        return by_id[matches[0]]
    if matches:
        raise LintTargetError(f"revision {target!r} is ambiguous: {', '.join(sorted(matches))}")
    raise LintTargetError(f"no revision {target!r} in alembic/versions/ and no such file")


# --- what the scripts print ---------------------------------------------------------

def report_check(targets: Iterable[str] = ()) -> bool:
    """Print the findings; True when none is left to fix."""
    result = lint_paths(revision_files(targets))
    for line in result.lines():
        click.echo(line)
    return result.passed


def report_generated(path: Path) -> None:
    """After `create_migration.py generate`: show the new revision's findings (on
    stderr, the revision is kept either way)."""
    result = lint_paths([path])
    if result.findings:
        for line in result.lines():
            click.echo(line, err=True)
        if not result.passed:
            click.echo("the revision was kept: fix it, or acknowledge a deliberate finding, then run "
                       "`python create_migration.py check`", err=True)
