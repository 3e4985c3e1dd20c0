"""Migration lint: revision scripts checked for operations that are unsafe on a
live database (rules M001..M011 in rules.py), read with `ast`, never imported.

    walker.py  the script -> schema operations and data statements, in source order
    sql.py     what a raw SQL string in a revision does
    rules.py   the rules: id, reason, safe alternative
    acks.py    `# migration-lint: ack M00X <reason>` comments
    report.py  findings and how they are printed
    check.py   which files to check, and the entry points of create_migration.py
"""
from backend.lint.check import (LintTargetError, lint_paths, lint_script, report_check, report_generated,
                                       revision_files)
from backend.lint.report import Finding, LintResult
from backend.lint.rules import RULES, RULES_BY_ID

__all__ = ["Finding", "LintResult", "LintTargetError", "RULES", "RULES_BY_ID", "lint_paths", "lint_script",
           "report_check", "report_generated", "revision_files"]
