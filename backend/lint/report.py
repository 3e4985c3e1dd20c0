"""Findings of one or more revision scripts, and how they are printed.

    alembic/versions/0004_translation_slugs.py:25: M004 batch_op.create_index(...) builds index ...
        acknowledged: <the reason from the comment>
    tests/lint_fixtures/m001_update.py:21: M001 SQL UPDATE in op.execute(...) changes rows of ...
        instead: schedule a backfill ...
    checked 7 revisions: 3 findings, 3 acknowledged, 0 to fix
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from backend.lint.acks import Acknowledgement
from backend.lint.rules import RULES_BY_ID, Advice


@dataclass(frozen=True)
class Finding:
    rule_id: str
    path: Path
    line: int
    message: str
    acknowledgement: Acknowledgement | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledgement is not None

    @property
    def alternative(self) -> str:
        return RULES_BY_ID[self.rule_id].alternative


@dataclass
class ScriptReport:
    path: Path
    revision: str | None
    findings: list[Finding] = field(default_factory=list)
    unused: list[Acknowledgement] = field(default_factory=list)  # matched no finding
    advice: list[Advice] = field(default_factory=list)  # notes, never failures


@dataclass
class LintResult:
    scripts: list[ScriptReport]

    @property
    def findings(self) -> list[Finding]:
        return [finding for script in self.scripts for finding in script.findings]

    @property
    def to_fix(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.acknowledged]

    @property
    def passed(self) -> bool:
        return not self.to_fix

    def lines(self, *, relative_to: Path | None = None) -> list[str]:
        lines: list[str] = []
        for script in self.scripts:
            shown = _shown(script.path, relative_to)
            for finding in sorted(script.findings, key=lambda f: (f.line, f.rule_id)):
                lines.append(f"{shown}:{finding.line}: {finding.rule_id} {finding.message}")
                if finding.acknowledgement:
                    lines.append(f"    acknowledged: {finding.acknowledgement.reason}")
                else:
                    lines.append(f"    instead: {finding.alternative}")
            for note in sorted(script.advice, key=lambda a: a.line):
                lines.append(f"{shown}:{note.line}: note: {note.message}")
            for ack in script.unused:
                lines.append(f"{shown}:{ack.line}: note: acknowledgement of {', '.join(ack.rule_ids)} "
                             f"matches no finding here")
        lines.append(self.summary())
        return lines

    def summary(self) -> str:
        count = len(self.scripts)
        findings = self.findings
        summary = (f"checked {count} revision{'s' if count != 1 else ''}: {len(findings)} "
                   f"finding{'s' if len(findings) != 1 else ''}, {len(findings) - len(self.to_fix)} acknowledged, "
                   f"{len(self.to_fix)} to fix")
        if self.to_fix:
            summary += " (fix them, or acknowledge a deliberate one: # migration-lint: ack M00X <reason>)"
        return summary


def _shown(path: Path, relative_to: Path | None) -> str:
    base = relative_to or Path.cwd()
    try:
        return os.path.relpath(path, base) if path.is_absolute() and path.is_relative_to(base) else str(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)
