"""`python create_migration.py check`: every rule fires on its failing fixture (at the
marked lines) and is silenced by an acknowledgement with a reason; the shipped
revisions pass, as CI runs them."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import create_migration
from backend.schema.lint import RULES, lint_paths, lint_script
from backend.schema.lint.sql import data_statements, ddl_statements
from tests.test_entry_scripts import REPO_ROOT, copy_db_url, created_path, repo_copy, run_script  # noqa: F401

FIXTURES = Path(__file__).parent / "lint_fixtures"
RULE_IDS = [rule.id for rule in RULES]
FINDING_MARK = re.compile(r"# finding: (M\d{3})")


def fixture(rule_id: str, acked: bool = False) -> Path:
    [path] = [p for p in FIXTURES.glob(f"{rule_id.lower()}_*.py") if p.stem.endswith("_acked") == acked]
    return path


def marked(path: Path) -> set[tuple[str, int]]:
    """(rule, line) for every `# finding: M00X` mark; for M010, every migration-lint comment."""
    expected = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        expected.update((rule_id, number) for rule_id in FINDING_MARK.findall(line))
        if path.stem.startswith("m010") and not path.stem.endswith("_acked") and "# migration-lint:" in line:
            expected.add(("M010", number))
    return expected


def check(*args: str):
    return CliRunner().invoke(create_migration.cli, ["check", *args], catch_exceptions=False)


def test_every_rule_has_a_failing_and_an_acknowledged_fixture():
    assert RULE_IDS == [f"M{n:03d}" for n in range(1, 11)]
    for rule_id in RULE_IDS:
        assert {rule for rule, _ in marked(fixture(rule_id))} >= {rule_id}
        assert fixture(rule_id, acked=True).is_file()


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_failing_fixture_reports_each_marked_line(rule_id):
    path = fixture(rule_id)
    report = lint_script(path)
    assert {(f.rule_id, f.line) for f in report.findings} == marked(path)
    assert not any(f.acknowledged for f in report.findings)

    result = check(str(path))
    assert result.exit_code == 1
    for finding in report.findings:
        line = f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}:{finding.line}: {rule_id}"
        if finding.rule_id == rule_id:
            assert line in result.stdout
    assert "    instead: " in result.stdout
    assert result.stdout.splitlines()[-1].startswith("checked 1 revision: ")
    assert " to fix (fix them, or acknowledge" in result.stdout


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_acknowledged_fixture_passes_and_shows_the_reasons(rule_id):
    path = fixture(rule_id, acked=True)
    report = lint_script(path)
    assert {(f.rule_id, f.line) for f in report.findings} == marked(path)
    assert all(f.acknowledged and f.acknowledgement.reason for f in report.findings)

    result = check(str(path))
    assert result.exit_code == 0, result.stdout
    reasons = [line.removeprefix("    acknowledged: ") for line in result.stdout.splitlines()
               if line.startswith("    acknowledged: ")]
    assert reasons == [f.acknowledgement.reason for f in sorted(report.findings, key=lambda f: (f.line, f.rule_id))]
    assert result.stdout.splitlines()[-1].endswith(" 0 to fix")


def test_acknowledgement_without_reason_or_for_another_rule_silences_nothing():
    findings = {(f.rule_id, f.line): f for f in lint_script(fixture("M010")).findings}
    assert findings[("M010", 11)].message == "acknowledges M004 without a reason"
    assert not findings[("M004", 12)].acknowledged
    assert findings[("M010", 13)].message == "acknowledges unknown rule M050"
    assert not findings[("M005", 13)].acknowledged
    assert "cannot be acknowledged" in findings[("M010", 16)].message


def test_shipped_revisions_pass_as_ci_runs_them():
    result = subprocess.run([sys.executable, "create_migration.py", "check"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"checked {len(list((REPO_ROOT / 'alembic' / 'versions').glob('*.py')))} revisions: " \
                        "3 findings, 3 acknowledged, 0 to fix"
    acknowledged = [lines[i - 1].split(": ")[1].split()[0] for i, line in enumerate(lines)
                    if line.startswith("    acknowledged: ")]
    assert acknowledged == ["M004", "M004", "M004"]  # 0004 and 0005 indexes, 0007 unique constraint


@pytest.mark.parametrize("target, message", [
    ("", "Error: an empty argument: give a revision id, a revision script or a directory of them\n"),
    (".", "Error: no Alembic revision scripts in .\n"),  # the repository root: scripts, none a revision
])
def test_an_empty_target_or_a_directory_without_revisions_is_an_error(target, message):
    result = check(target)
    assert result.exit_code == 1 and result.stderr == message


def test_revisions_are_named_by_id_prefix_or_path_and_unknown_ones_are_one_line_errors():
    by_prefix = check("0004")
    assert by_prefix.exit_code == 0 and "0004_translation_slugs.py:" in by_prefix.stdout
    assert by_prefix.stdout.splitlines()[-1].startswith("checked 1 revision: 1 finding, 1 acknowledged")
    both = check(str(fixture("M001")), "0007_translation_slugs_unique")
    assert both.exit_code == 1 and "checked 2 revisions" in both.stdout
    unknown = check("no_such_revision")
    assert unknown.exit_code == 1
    assert unknown.stderr == "Error: no revision 'no_such_revision' in alembic/versions/ and no such file\n"


def test_scripts_are_read_not_imported(tmp_path):
    script = tmp_path / "evil.py"
    script.write_text('"""would exit if imported"""\nimport sys\nsys.exit("imported!")\nfrom alembic import op\n'
                      'revision = "evil"\n\n\ndef upgrade():\n    op.drop_table("users")\n\n\n'
                      'def downgrade():\n    pass\n')
    result = check(str(script))
    assert result.exit_code == 1
    assert {f.rule_id for f in lint_paths([script]).findings} == {"M005", "M008"}


def test_sql_text_classification():
    assert data_statements("UPDATE ONLY public.orders SET x = 1") [0].table == "orders"
    assert data_statements("WITH t AS (SELECT 1) DELETE FROM \"Orders\" USING t")[0].kind == "delete"
    for harmless in ("ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES c (id) ON UPDATE CASCADE",
                     "SELECT 1 FROM orders FOR UPDATE",
                     "INSERT INTO settings (k, v) VALUES ('a', 'b') ON CONFLICT (k) DO UPDATE SET v = 'b'",
                     "COMMENT ON TABLE orders IS 'UPDATE orders SET nothing'  -- DELETE FROM orders"):
        assert [s.kind for s in data_statements(harmless)] in ([], ["select"]), harmless
    assert ddl_statements("ALTER TABLE orders ADD CONSTRAINT ck CHECK (total_cents IS NOT NULL) NOT VALID") == []
    changes = ddl_statements("ALTER TABLE users ADD COLUMN a int NOT NULL, DROP COLUMN b, "
                             "ALTER COLUMN c TYPE bigint, RENAME COLUMN d TO e")
    assert [(c.operation, c.column) for c in changes] == [
        ("add_column", "a"), ("drop_column", "b"), ("alter_column", "c"), ("alter_column", "d")]


def test_generate_prints_the_new_revisions_findings_and_keeps_it(repo_copy, copy_db_url):  # noqa: F811
    user_model = repo_copy / "backend" / "models" / "user.py"
    anchor = "    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)\n"
    source = user_model.read_text()
    assert anchor in source
    user_model.write_text(source.replace(
        anchor, anchor + "    nickname: Mapped[str] = mapped_column(sa.String(64), nullable=False)\n"))

    result = run_script("create_migration.py", "generate", "-m", "nickname required",
                        database_url=copy_db_url, cwd=repo_copy)
    assert result.returncode == 0, result.stderr
    path = created_path(result, repo_copy)  # stdout is still just "created <path>"
    assert path.is_file()
    assert re.search(rf"{re.escape(path.name)}:\d+: M002 .*users\.nickname", result.stderr), result.stderr
    assert "the revision was kept" in result.stderr
