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
from backend.lint import RULES, lint_paths, lint_script, revision_files
from backend.lint.sql import data_statements, ddl_statements, lock_timeout_settings, shop_locking_statements
from backend.lint.walker import parse_script
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
    assert RULE_IDS == [f"M{n:03d}" for n in range(1, 12)]
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
    # 0004-0007 build their indexes, unique constraint and NOT NULL with backend.migrations.online
    assert lines == [f"checked {len(list((REPO_ROOT / 'alembic' / 'versions').glob('*.py')))} revisions: "
                     "0 findings, 0 acknowledged, 0 to fix"]


def test_online_helpers_are_operations_on_their_table_built_concurrently():
    """create_index / add_unique_constraint / ... however imported: no M004; set_not_null
    before its gate is M003, a NOT NULL add_column without default M002."""
    path = FIXTURES / "online_helpers.py"
    report = lint_script(path)
    assert {(f.rule_id, f.line) for f in report.findings} == marked(path)
    assert not [f for f in report.findings if f.rule_id == "M004"] and not report.advice
    script, _ = parse_script(path)
    helpers = [(op.helper, op.operation, op.table) for op in script.operations if op.function == "upgrade"]
    assert helpers == [
        ("set_not_null", "alter_column", "orders"), ("set_not_null", "alter_column", "users"),
        ("add_column", "add_column", "users"), ("add_column", "add_column", "users"),
        ("create_index", "create_index", "orders"), ("create_index", "create_index", "orders"),
        ("create_index", "create_index", "orders"),
        ("add_unique_constraint", "create_unique_constraint", "users"),
        ("add_foreign_key", "create_foreign_key", "orders"), ("drop_index", "drop_index", "orders"),
        ("set_not_null", "alter_column", "product_translations")]
    messages = {f.line: f.message for f in report.findings}
    assert "users.email_normalized NOT NULL" in messages[21] and "users.nickname" in messages[22]


def test_index_jobs_are_index_operations_built_concurrently_and_clean():
    """schedule_index / unschedule_index (backend.migrations.index_jobs), however
    imported, are the index builds and drops they stand for, done concurrently by the
    job: the revision that schedules them, validates later and gates on them is clean."""
    path = FIXTURES / "index_jobs.py"
    report = lint_script(path)
    assert report.findings == [] and not report.advice
    script, _ = parse_script(path)
    jobs = [(op.function, op.helper, op.operation, op.table, op.index, op.concurrently)
            for op in script.operations if op.helper]
    assert jobs == [
        ("upgrade", "schedule_index", "create_index", "orders", "ix_orders_placed_at", True),
        ("upgrade", "schedule_index", "create_index", "orders", "ix_orders_open", True),
        ("downgrade", "unschedule_index", "drop_index", "orders", "ix_orders_open", True),
        ("downgrade", "unschedule_index", "drop_index", "orders", "ix_orders_placed_at", True)]
    assert check(str(path)).exit_code == 0


@pytest.mark.parametrize("step", ["expand", "contract", "cleanup"])
def test_a_type_change_done_with_its_helpers_is_clean(step):
    """The three revisions of backend.migrations.type_change: no M007 (nor M005 for the
    cleanup's drop of the old column, a copy), as the advice of M007 promises."""
    path = FIXTURES / f"type_change_{step}.py"
    report = lint_script(path)
    assert report.findings == [] and not report.advice
    assert check(str(path)).exit_code == 0


def test_the_type_change_advice_names_the_helpers():
    [rule] = [rule for rule in RULES if rule.id == "M007"]
    assert all(helper in rule.alternative for helper in ("start_type_change", "finish_type_change", "cleanup_type_change"))
    result = check(str(fixture("M007")))
    assert "backend.migrations.type_change" in result.stdout


def test_lock_timeout_bypasses_are_one_finding_each():
    """Each way around env.py's lock_timeout is reported once, at its call."""
    report = lint_script(fixture("M011"))
    lines = [f.line for f in report.findings]
    assert len(lines) == len(set(lines))
    messages = {f.line: f.message for f in report.findings}
    assert "`SET lock_timeout = 0` turns it off" in messages[14]
    assert "`RESET lock_timeout`" in messages[16]
    assert "with lock_timeout(None):" in messages[19] and "of orders" in messages[19]
    assert "opens a database connection of the revision's own" in messages[33]
    assert "downgrade()" not in messages[33] and "SET lock_timeout = '1min'" in messages[45]


@pytest.mark.parametrize("statement", ["SET lock_timeout = 0", "SET LOCAL lock_timeout TO '0'",
                                       "set session lock_timeout = '30s'", "RESET lock_timeout", "RESET ALL",
                                       "SELECT set_config('lock_timeout', '0', false)"])
def test_raw_lock_timeout_changes_are_found(statement):
    assert len(lock_timeout_settings(f"{statement}; ALTER TABLE t ADD c int")) == 1


def test_statement_timeout_and_shop_friendly_locks_are_not_lock_timeout_bypasses():
    assert lock_timeout_settings("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0") == []
    for harmless in ("ALTER TABLE orders VALIDATE CONSTRAINT ck", "CREATE INDEX CONCURRENTLY ix ON orders (a)",
                     "DROP INDEX CONCURRENTLY ix", "LOCK orders IN ROW EXCLUSIVE MODE", "UPDATE orders SET a = 1"):
        assert shop_locking_statements(harmless) == [], harmless
    assert [s.table for s in shop_locking_statements(
        "ALTER TABLE orders ADD CONSTRAINT ck CHECK (a > 0) NOT VALID; LOCK TABLE users; DROP INDEX ix")] == \
        ["orders", "users", None]


def test_a_hand_written_concurrent_build_is_a_note_not_a_finding(tmp_path):
    script = tmp_path / "concurrent.py"
    script.write_text('from alembic import op\nrevision = "concurrent"\n\n\ndef upgrade():\n'
                      '    with op.get_context().autocommit_block():\n'
                      '        op.create_index("ix_orders_a", "orders", ["a"], postgresql_concurrently=True)\n\n\n'
                      'def downgrade():\n    op.drop_index("ix_orders_a", table_name="orders")\n')
    result = check(str(script))
    assert result.exit_code == 0, result.stdout
    assert f"concurrent.py:7: note: op.create_index(...) builds index ix_orders_a CONCURRENTLY by hand" \
           in result.stdout
    assert "create_index(...) from backend.migrations.online" in result.stdout
    assert result.stdout.splitlines()[-1] == "checked 1 revision: 0 findings, 0 acknowledged, 0 to fix"
    assert [a.line for a in lint_script(fixture("M004")).advice] == [21, 22]  # its autocommit block


@pytest.mark.parametrize("target, message", [
    ("", "Error: an empty argument: give a revision id, a revision script or a directory of them\n"),
    (".", "Error: no Alembic revision scripts in .\n"),  # the repository root: scripts, none a revision
])
def test_an_empty_target_or_a_directory_without_revisions_is_an_error(target, message):
    result = check(target)
    assert result.exit_code == 1 and result.stderr == message


def test_revisions_are_named_by_id_prefix_or_path_and_unknown_ones_are_one_line_errors():
    assert [path.name for path in revision_files(["0004"])] == ["0004_translation_slugs.py"]
    by_prefix = check("0004")
    assert by_prefix.exit_code == 0
    assert by_prefix.stdout.splitlines()[-1].startswith("checked 1 revision: 0 findings, 0 acknowledged")
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
