"""The migration history itself, on SQLite and on a real, fresh PostgreSQL database.

pytest-alembic's built-in tests (single head, upgrade, models match the migrations,
up/down consistency) run once per database kind through the `alembic_engine`
fixture; the guide's `alembic` commands run as subprocesses from the repository root.
"""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
# Imported, not left to the plugin's entry point: pytest-alembic 0.13.1's own collector
# crashes on pytest >= 9.2, so the suite may run with `-p no:pytest_alembic`.
from pytest_alembic.plugin.fixtures import alembic_runner  # noqa: F401 - a fixture
from pytest_alembic.tests import (  # noqa: F401 - collected by pytest, once per database kind
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

from backend.db import create_db_engine
from backend.migrations import alembic_api

REPO_ROOT = Path(__file__).resolve().parent.parent
# The console script of this virtualenv, as the guide runs it (not `python -m alembic`,
# which would hide a broken `prepend_sys_path`).
ALEMBIC = str(Path(sys.executable).with_name("alembic"))


@pytest.fixture
def alembic_engine(db_url):
    """An empty database of each kind (conftest's `db_url`: SQLite file / fresh PG database)."""
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def alembic_config(alembic_engine):
    """The project's own Alembic config (alembic.ini, env.py and its schema lock)."""
    return alembic_api.alembic_config(alembic_engine.url.render_as_string(hide_password=False))


def test_pytest_alembic_runs_on_the_requested_database(alembic_runner, alembic_engine, request):
    """Guards the parametrization: the PostgreSQL case really migrates a PostgreSQL database."""
    assert alembic_engine.dialect.name == request.node.callspec.params["db_url"]
    alembic_runner.migrate_up_to("heads")
    tables = set(sa.inspect(alembic_engine).get_table_names())
    assert {"alembic_version", "users", "products", "orders", "backfill_runs"} <= tables


# --- the guide's alembic commands, from the repository root --------------------------

def alembic(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [ALEMBIC, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stderr}"
    return result


def check_guide_commands(database_url: str) -> None:
    script = alembic_api.script_directory()
    (head,) = script.get_heads()
    previous = script.get_revision(head).down_revision

    alembic(database_url, "upgrade", "head")
    assert alembic_api.current_revisions(database_url) == (head,)
    assert f"{head} (head)" in alembic(database_url, "current").stdout
    assert "No new upgrade operations detected" in alembic(database_url, "check").stdout
    history = alembic(database_url, "history").stdout
    assert all(rev.revision in history for rev in script.walk_revisions())

    alembic(database_url, "downgrade", "-1")
    assert alembic_api.current_revisions(database_url) == ((previous,) if previous else ())

    alembic(database_url, "downgrade", "base")
    assert alembic_api.current_revisions(database_url) == ()
    engine = create_db_engine(database_url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_guide_alembic_commands_on_sqlite_and_postgresql(sqlite_url, pg_url):
    """Both chains at once: each step is a slow interpreter start, and they share nothing."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(check_guide_commands, url) for url in (sqlite_url, pg_url)]:
            future.result()
