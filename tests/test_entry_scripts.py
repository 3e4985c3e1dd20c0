"""run_migrations.py, create_migration.py and run.py, as users run them.

Process-level behaviour (exit codes, one-line errors, the server) goes through real
subprocesses; the many small option checks call the click commands in-process, which
runs the same code without paying for an interpreter start each time.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import create_migration
import flask
import run
import run_migrations
from backend.db import create_db_engine
from backend.migrations import alembic_api
from tests.processes import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE_PG = "postgresql+psycopg2://postgres@127.0.0.1:1/x"
HEAD = alembic_api.head_revisions()[0]
REVISIONS = [rev.revision for rev in reversed(list(alembic_api.script_directory().walk_revisions()))]


# --- helpers, also used by test_concurrent_upgrade.py --------------------------------

def script_env(database_url: str) -> dict[str, str]:
    """The caller's environment with our database, and no PYTHONPATH that could make a
    copy of the repository import the real `backend` package."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "DATABASE_URL": database_url}


def script_command(script: str, *args: str) -> list[str]:
    return [sys.executable, script, *args]


def run_script(script: str, *args: str, database_url: str, cwd: Path = REPO_ROOT):
    return subprocess.run(
        script_command(script, *args), cwd=cwd, env=script_env(database_url),
        capture_output=True, text=True, timeout=60,
    )


def start_script(script: str, *args: str, database_url: str, log: Path) -> subprocess.Popen:
    """Start a long-running script with its output in `log` (a pipe nobody reads could fill up)."""
    with open(log, "w") as output:
        return subprocess.Popen(
            script_command(script, *args), cwd=REPO_ROOT, env=script_env(database_url),
            stdout=output, stderr=subprocess.STDOUT, text=True,
        )


def applied_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("applied ")]


def applied_ids(output: str) -> list[str]:
    """Revision ids from the `applied <id>: <message>` lines."""
    return [line.split()[1].rstrip(":") for line in applied_lines(output)]


def wait_for_health(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"/health on port {port} did not answer 200 within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def invoke(command, *args: str):
    """Run a click command in-process; click >= 8.2 keeps stdout and stderr apart."""
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


# --- run_migrations.py ---------------------------------------------------------------

def test_run_migrations_applies_then_has_nothing_to_do(sqlite_url):
    first = run_script("run_migrations.py", database_url=sqlite_url)
    assert first.returncode == 0, first.stderr
    assert applied_lines(first.stdout) == [
        f"applied {rev.revision}: {' '.join(rev.doc.split())}" for rev in reversed(list(alembic_api.script_directory().walk_revisions()))
    ]
    assert first.stdout.splitlines()[-1] == f"now at head ({HEAD})"
    assert alembic_api.current_revisions(sqlite_url) == (HEAD,)

    second = invoke(run_migrations.main, "--database-url", sqlite_url)
    assert second.exit_code == 0
    assert second.stdout == f"already at head ({HEAD})\n"


def test_status_of_a_missing_sqlite_file_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "typo" / "shop.db"
    result = invoke(run_migrations.main, "--status", "--database-url", f"sqlite:///{missing}")
    assert result.exit_code == 1
    assert result.stderr == f"Error: no SQLite database at {missing} (python run_migrations.py creates it)\n"
    assert not missing.parent.exists()


def test_status_before_and_after_upgrade(db_url):
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # an empty database file
    before = invoke(run_migrations.main, "--status", "--database-url", db_url)
    assert before.exit_code == 0, before.output
    assert before.stdout.splitlines()[:3] == ["current: base", f"head:    {HEAD}", f"pending ({len(REVISIONS)}):"]
    lines = before.stdout.splitlines()
    assert [line.split(":")[0].strip() for line in lines[3:3 + len(REVISIONS)]] == REVISIONS
    assert lines[3 + len(REVISIONS):] == ["backfills: none yet (the engine's tables come with revision 0002)"]
    assert alembic_api.current_revisions(db_url) == ()  # --status changes nothing

    assert invoke(run_migrations.main, "--database-url", db_url).exit_code == 0
    after = invoke(run_migrations.main, "--status", "--database-url", db_url).stdout.splitlines()
    assert after[:4] == [f"current: {HEAD}", f"head:    {HEAD}", "up to date: no pending revisions", "backfills:"]
    # On an empty database the gates completed their runs (the type-change copies exist on PostgreSQL only).
    copies = ["type_change:order_items.unit_price_cents", "type_change:products.price_cents"]
    expected = ["orders_total_cents", "translation_slugs", "users_email_normalized"]
    expected += copies if db_url.startswith("postgresql") else []
    assert sorted(line.split()[1:3] for line in after[5:]) == sorted([name, "completed"] for name in expected)


def test_status_lists_only_the_revisions_still_pending(sqlite_url):
    alembic_api.upgrade(sqlite_url, REVISIONS[0])
    result = invoke(run_migrations.main, "--status", "--database-url", sqlite_url)
    assert result.stdout.splitlines()[0] == f"current: {REVISIONS[0]}"
    assert f"pending ({len(REVISIONS) - 1}):" in result.stdout
    assert REVISIONS[0] + ":" not in result.stdout


def test_database_url_comes_from_the_environment(sqlite_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert invoke(run_migrations.main).exit_code == 0
    assert alembic_api.current_revisions(sqlite_url) == (HEAD,)


def test_unreachable_database_is_one_line_error():
    result = run_script("run_migrations.py", database_url=UNREACHABLE_PG)
    assert_one_line_error(result, "Error: database error:", "port 1")


def test_bare_postgresql_url_means_psycopg2():
    """postgresql:// (as platforms write it) is read as the psycopg2 driver we ship,
    not SQLAlchemy 2.1's default psycopg 3: the error is about the unreachable port."""
    result = invoke(run_migrations.main, "--database-url", "postgresql://postgres@127.0.0.1:1/x")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "port 1" in result.stderr


@pytest.mark.parametrize("token", ["pässwört-token", "tab\there", "ops:\u2603"])
def test_an_admin_token_that_http_cannot_carry_is_a_config_error(sqlite_url, monkeypatch, token):
    monkeypatch.setenv("ADMIN_API_TOKEN", token)
    result = invoke(run_migrations.main, "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: configuration error: ADMIN_API_TOKEN must be printable ASCII")


def test_config_error_is_one_line(sqlite_url, monkeypatch):
    monkeypatch.setenv("DEFAULT_LOCALE", "xx")
    result = invoke(run_migrations.main, "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: configuration error: DEFAULT_LOCALE='xx' is not one of SUPPORTED_LOCALES (en, de, fr, es, ja)\n"
    )


BAD_BACKFILL_SETTINGS = [
    ("BACKFILL_MODULES", "nope.mod", "BACKFILL_MODULES: cannot import 'nope.mod' (No module named 'nope')"),
    ("BACKFILL_HEALTH_CHECKS", "lock_waits,bogus", "BACKFILL_HEALTH_CHECKS: unknown health check 'bogus' (known: "),
    ("BACKFILL_RECOVERY_INTERVAL", "abc", "BACKFILL_RECOVERY_INTERVAL='abc' is not a number"),
    ("BACKFILL_RECOVERY_INTERVAL", "0", "BACKFILL_RECOVERY_INTERVAL='0' must be at least 1"),
    ("BACKFILL_STALL_SECONDS", "0.5", "BACKFILL_STALL_SECONDS='0.5' must be at least 1"),
]


@pytest.mark.parametrize("name, value, message", BAD_BACKFILL_SETTINGS)
def test_a_bad_backfill_setting_stops_the_scripts_with_one_line(sqlite_url, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    result = invoke(run_migrations.main, "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: configuration error: {message}") and result.stderr.count("\n") == 1
    assert alembic_api.current_revisions(sqlite_url) == ()  # nothing was migrated


@pytest.mark.parametrize("name, value, message", BAD_BACKFILL_SETTINGS)
def test_a_bad_backfill_setting_stops_the_worker_with_one_line(sqlite_url, name, value, message):
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "worker"], cwd=REPO_ROOT,
                            env={**script_env(sqlite_url), name: value}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: configuration error: {message}") and result.stderr.count("\n") == 1


def test_alembic_error_is_one_line(sqlite_url):
    """A database stamped with a revision this checkout does not have (e.g. a newer branch)."""
    engine = create_db_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('deadbeef0000')"))
    engine.dispose()
    for args in ([], ["--status"]):
        result = invoke(run_migrations.main, "--database-url", sqlite_url, *args)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: alembic: ") and result.stderr.count("\n") == 1
        assert "deadbeef0000" in result.stderr


# --- create_migration.py -------------------------------------------------------------

def test_generate_requires_a_message():
    result = invoke(create_migration.cli, "generate")
    assert result.exit_code == 2
    assert "Missing option '-m' / '--message'" in result.stderr


def test_generate_refuses_a_blank_message():
    result = invoke(create_migration.cli, "generate", "-m", "  ", "--empty")
    assert result.exit_code == 1
    assert result.stderr == "Error: the revision message is empty: describe the change with -m\n"


def test_merge_with_a_single_head_is_an_error():
    result = invoke(create_migration.cli, "merge")
    assert result.exit_code == 1
    assert result.stderr == f"Error: nothing to merge: there is only one head ({HEAD})\n"


def test_generate_refuses_a_database_behind_head(sqlite_url):
    versions = sorted((REPO_ROOT / "alembic" / "versions").glob("*.py"))
    result = invoke(create_migration.cli, "generate", "-m", "anything", "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert result.stderr == f"Error: database is at base, head is {HEAD}: run `python run_migrations.py` first\n"
    assert sorted((REPO_ROOT / "alembic" / "versions").glob("*.py")) == versions

    alembic_api.upgrade(sqlite_url, REVISIONS[0])
    result = invoke(create_migration.cli, "generate", "-m", "anything", "--database-url", sqlite_url)
    assert f"database is at {REVISIONS[0]}, head is {HEAD}" in result.stderr


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The parts of the repository the scripts need, so that generated revisions (and
    edited models) never touch the real checkout."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for directory in ("alembic", "backend"):
        shutil.copytree(REPO_ROOT / directory, root / directory, ignore=ignore)
    for name in ("alembic.ini", "create_migration.py", "run_migrations.py", "wiring.py"):
        shutil.copy2(REPO_ROOT / name, root / name)
    return root


@pytest.fixture
def copy_db_url(tmp_path) -> str:
    """A SQLite database at head (the copy's revisions are the real ones until a test adds some)."""
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    alembic_api.upgrade(url)
    return url


def created_path(result, root: Path) -> Path:
    match = re.fullmatch(r"created (.+\.py)", result.stdout.strip())
    assert match, result.stdout
    path = Path(match.group(1))
    assert path.parent == root / "alembic" / "versions" and path.is_file()
    return path


def revision_id(path: Path) -> str:
    return re.search(r"^revision: str = '(\w+)'$", path.read_text(), re.MULTILINE).group(1)


def test_generate_autogenerates_a_model_change(repo_copy, copy_db_url):
    user_model = repo_copy / "backend" / "models" / "user.py"
    source = user_model.read_text()
    anchor = "    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)\n"
    assert anchor in source
    user_model.write_text(source.replace(
        anchor, anchor + "    nickname: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)\n"
    ))

    result = run_script("create_migration.py", "generate", "-m", "add nickname to users",
                        database_url=copy_db_url, cwd=repo_copy)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    revision_file = created_path(result, repo_copy)
    text = revision_file.read_text()
    assert "add_column" in text and "'nickname'" in text and f"down_revision: Union[str, Sequence[str], None] = '{HEAD}'" in text

    applied = run_script("run_migrations.py", database_url=copy_db_url, cwd=repo_copy)
    assert applied.returncode == 0, applied.stderr
    assert applied_lines(applied.stdout) == [f"applied {revision_id(revision_file)}: add nickname to users"]
    assert "nickname" in {column["name"] for column in sa.inspect(create_db_engine(copy_db_url)).get_columns("users")}


def test_generate_without_model_changes_warns_that_the_revision_is_empty(repo_copy, copy_db_url):
    result = run_script("create_migration.py", "generate", "-m", "nothing changed",
                        database_url=copy_db_url, cwd=repo_copy)
    assert result.returncode == 0, result.stderr
    assert "warning: no model changes detected, the revision is empty" in result.stderr
    text = created_path(result, repo_copy).read_text()
    assert "add_column" not in text and "    pass" in text


def test_a_failing_revision_is_one_line_after_what_was_applied(repo_copy, tmp_path):
    """Revisions before the failing one stay applied (one transaction each) and are reported."""
    (repo_copy / "alembic" / "versions" / "broken.py").write_text(
        f'"""broken"""\nrevision = "broken"\ndown_revision = "{HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        'def upgrade():\n    raise RuntimeError("boom")\n\n\ndef downgrade():\n    pass\n'
    )
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    result = run_script("run_migrations.py", database_url=url, cwd=repo_copy)
    assert_one_line_error(result, "Error: unexpected RuntimeError: boom (at ", "broken.py:9)")
    assert applied_ids(result.stdout) == REVISIONS
    assert alembic_api.current_revisions(url) == (HEAD,)


def test_empty_revision_and_merge_of_two_heads(repo_copy):
    # --empty needs no database: an unreachable one proves it.
    empty = run_script("create_migration.py", "generate", "--empty", "-m", "hand written",
                       database_url=UNREACHABLE_PG, cwd=repo_copy)
    assert empty.returncode == 0, empty.stderr
    first_head = revision_id(created_path(empty, repo_copy))

    # A second branch from the same parent, as a teammate's merged work would add.
    (repo_copy / "alembic" / "versions" / "branch_b.py").write_text(
        f'"""teammate\'s change"""\nrevision = "branch_b"\ndown_revision = "{HEAD}"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    several = run_script("run_migrations.py", database_url=UNREACHABLE_PG, cwd=repo_copy)
    assert_one_line_error(several, "several heads", "python create_migration.py merge")

    merged = run_script("create_migration.py", "merge", database_url=UNREACHABLE_PG, cwd=repo_copy)
    assert merged.returncode == 0, merged.stderr
    text = created_path(merged, repo_copy).read_text()
    assert '"""merge heads' in text
    parents = re.search(r"^down_revision: .* = \((.*)\)$", text, re.MULTILINE).group(1)
    assert set(parents.replace("'", "").split(", ")) == {first_head, "branch_b"}


# --- run.py --------------------------------------------------------------------------

def test_run_py_migrates_then_serves(tmp_path, sqlite_url):
    port = free_port()
    log = tmp_path / "run.log"
    server = start_script("run.py", "--port", str(port), database_url=sqlite_url, log=log)
    try:
        wait_for_health(port, server)
    finally:
        stop(server)
    assert alembic_api.current_revisions(sqlite_url) == (HEAD,)
    assert applied_ids(log.read_text()) == REVISIONS


def test_run_py_options_reach_the_server(sqlite_url, monkeypatch):
    served = []
    monkeypatch.setattr(flask.Flask, "run", lambda app, **options: served.append(options))
    result = invoke(run.main, "--no-migrate", "--host", "0.0.0.0", "--port", "8123", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert served == [{"host": "0.0.0.0", "port": 8123, "debug": False, "use_reloader": False}]
    assert alembic_api.current_revisions(sqlite_url) == ()  # --no-migrate left the schema alone


def test_run_py_busy_port_is_one_line_before_migrating(sqlite_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke(run.main, "--port", str(port), "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert alembic_api.current_revisions(sqlite_url) == ()
