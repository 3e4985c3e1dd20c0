"""Offline mode: `alembic upgrade head --sql` renders the script a DBA reviews, and
that script, run with psql, does what the online upgrade does: the same schema, the
backfill schedule as INSERTs, each gate as a block that stops psql while its
backfill is unfinished."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.db import create_db_engine
from backend.migrations.alembic_api import current_revisions, head_revisions, upgrade
from tests.conftest import IN_CI, create_pg_database, drop_pg_database
from tests.processes import ROOT, subprocess_env
from tests.shop_data import seed_shop

FOUNDATION = "0002_backfill_state"
FINISH = "Finish it with: python run_migrations.py --batched"


@pytest.fixture(scope="module")
def psql_binary() -> str:
    binary = shutil.which("psql")
    if binary is None:
        if IN_CI:
            pytest.fail("psql is not installed; CI requires it")
        pytest.skip("psql is not installed")
    return binary


def render_sql(database_url: str, *args: str) -> str:
    """`alembic <args> --sql` from the repository root, as a DBA would run it."""
    result = alembic_sql(database_url, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def alembic_sql(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alembic", *args, "--sql"], cwd=ROOT,
                          env=subprocess_env(DATABASE_URL=database_url), capture_output=True, text=True, timeout=120)


def run_psql(psql: str, database_url: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "script.sql"
    path.write_text(script)
    conninfo = sa.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-f", str(path), conninfo],
                          capture_output=True, text=True, timeout=120)


def query(database_url: str, sql: str) -> list[tuple]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def execute(database_url: str, sql: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(sql))
    finally:
        engine.dispose()


def schema_snapshot(database_url: str) -> dict[str, list[tuple]]:
    """Columns, indexes (with validity) and constraints of every table in public."""
    return {
        "columns": query(database_url, """
            SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default
            FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"""),
        "indexes": query(database_url, """
            SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisready
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1"""),
        "constraints": query(database_url, """
            SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid), convalidated
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"""),
    }


def backfill_state(database_url: str) -> dict[str, list[tuple]]:
    return {
        "runs": query(database_url, """
            SELECT name, status, scheduled_by, batch_size, max_parallel, key_type, rows_total, rows_total_exact,
                   started_at IS NOT NULL, finished_at IS NOT NULL FROM backfill_runs ORDER BY name"""),
        "transitions": query(database_url, """
            SELECT r.name, t.from_status, t.to_status, t.actor, t.reason
            FROM backfill_transitions t JOIN backfill_runs r ON r.id = t.run_id ORDER BY r.name, t.id"""),
    }


def concurrent_steps(script: str) -> list[tuple[str, bool, str | None]]:
    """(statement, inside BEGIN/COMMIT?, lock_timeout in force) for each CONCURRENTLY line."""
    in_transaction, timeout, found = False, None, []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped == "BEGIN;":
            in_transaction = True
        elif stripped == "COMMIT;":
            in_transaction = False
        elif stripped.startswith("SET lock_timeout = "):
            timeout = stripped.split("=", 1)[1].strip(" ;")
        elif "CONCURRENTLY" in stripped:
            found.append((stripped, in_transaction, timeout))
    return found


# --- upgrade on a fresh database ----------------------------------------------------

def test_the_script_builds_on_an_empty_database_what_the_online_upgrade_builds(pg_url, psql_binary, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_MS", "350")
    script = render_sql(pg_url, "upgrade", "head")

    assert script.lstrip().startswith("SET lock_timeout = '350ms';")
    steps = concurrent_steps(script)
    assert {statement.split(" ON ")[0] for statement, _, _ in steps} >= {
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_email_normalized",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_product_translations_locale_slug",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_product_translations_locale_slug;",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_users_email_normalized",
    }
    for statement, in_transaction, timeout in steps:
        assert not in_transaction, statement
        assert timeout == "'0ms'", statement
    assert script.count("SET lock_timeout = '350ms';") == 1 + script.count("SET lock_timeout = '0ms';")

    result = run_psql(psql_binary, pg_url, script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert current_revisions(pg_url) == head_revisions()

    online_url = create_pg_database()
    try:
        upgrade(online_url, "head")
        assert schema_snapshot(pg_url) == schema_snapshot(online_url)
        # The gates completed the runs that had nothing to do, as online.
        assert backfill_state(pg_url) == backfill_state(online_url)
    finally:
        drop_pg_database(online_url)
    statuses = {name: status for name, status, *_ in backfill_state(pg_url)["runs"]}
    assert statuses == {"orders_total_cents": "completed", "translation_slugs": "completed",
                        "type_change:order_items.unit_price_cents": "completed",
                        "type_change:products.price_cents": "completed",
                        "users_email_normalized": "completed"}


# --- gates --------------------------------------------------------------------------

@pytest.fixture
def shop_at_foundation(pg_url) -> str:
    upgrade(pg_url, FOUNDATION)
    engine = create_db_engine(pg_url)
    seed_shop(engine)
    engine.dispose()
    return pg_url


def test_the_gate_stops_psql_while_the_backfill_has_rows_to_do(shop_at_foundation, psql_binary, tmp_path):
    url = shop_at_foundation
    script = render_sql(url, "upgrade", f"{FOUNDATION}:head")
    # A range starts from the database's revision: none of 0001's and 0002's tables again.
    assert "CREATE TABLE users" not in script and "CREATE TABLE backfill_runs" not in script

    result = run_psql(psql_binary, url, script, tmp_path)

    assert result.returncode != 0
    assert ("revision 0006_orders_total_not_null requires backfill orders_total_cents to be finished "
            "(orders_total_cents: run 1 is pending, 40 rows still need work). " + FINISH) in result.stderr
    assert current_revisions(url) == ("0005_users_email_normalized",)
    columns = dict(query(url, """SELECT table_name || '.' || column_name, is_nullable FROM information_schema.columns
                                 WHERE column_name IN ('total_cents', 'slug', 'email_normalized')"""))
    assert columns == {"orders.total_cents": "YES", "product_translations.slug": "YES",
                       "users.email_normalized": "YES"}
    assert query(url, """SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                         WHERE c.relname IN ('ix_users_email_normalized', 'ix_product_translations_locale_slug')
                         ORDER BY 1""") == [("ix_product_translations_locale_slug", True),
                                            ("ix_users_email_normalized", True)]
    assert [(name, status) for name, status, *_ in backfill_state(url)["runs"]] == [
        ("orders_total_cents", "pending"), ("translation_slugs", "pending"), ("users_email_normalized", "pending")]


def test_the_gate_checks_the_data_and_passes_once_it_is_filled(shop_at_foundation, psql_binary, tmp_path):
    url = shop_at_foundation
    upgrade(url, "0005_users_email_normalized")
    execute(url, "UPDATE backfill_runs SET status = 'completed' WHERE name = 'orders_total_cents'")
    script = render_sql(url, "upgrade", "0005_users_email_normalized:head")

    result = run_psql(psql_binary, url, script, tmp_path)
    assert result.returncode != 0
    assert "(orders_total_cents: run 1 completed but 40 rows still need work)" in result.stderr
    assert current_revisions(url) == ("0005_users_email_normalized",)

    execute(url, """UPDATE orders o SET total_cents = coalesce(
                        (SELECT sum(quantity * unit_price_cents) FROM order_items i WHERE i.order_id = o.id), 0)""")
    result = run_psql(psql_binary, url, script, tmp_path)
    assert result.returncode != 0
    assert "revision 0007_translation_slugs_unique requires backfill translation_slugs" in result.stderr
    assert current_revisions(url) == ("0006_orders_total_not_null",)
    assert query(url, """SELECT is_nullable FROM information_schema.columns
                         WHERE table_name = 'orders' AND column_name = 'total_cents'""") == [("NO",)]


def test_the_schedule_adds_no_run_while_one_is_active(pg_url, psql_binary, tmp_path):
    upgrade(pg_url, FOUNDATION)
    execute(pg_url, """INSERT INTO backfill_runs (name, status, batch_size, scheduled_by)
                       VALUES ('orders_total_cents', 'running', 100, 'by hand')""")
    script = render_sql(pg_url, "upgrade", f"{FOUNDATION}:0003_orders_total_cents")

    result = run_psql(psql_binary, pg_url, script, tmp_path)

    assert result.returncode == 0, result.stderr
    assert query(pg_url, "SELECT name, status, scheduled_by FROM backfill_runs") == [
        ("orders_total_cents", "running", "by hand")]
    assert query(pg_url, "SELECT count(*) FROM backfill_transitions") == [(0,)]


# --- downgrade ----------------------------------------------------------------------

def test_the_downgrade_script_drops_what_the_upgrade_added_and_unschedules(pg_url, psql_binary, tmp_path):
    upgrade(pg_url, "head")
    script = render_sql(pg_url, "downgrade", f"head:{FOUNDATION}")

    for expected in ("DROP INDEX CONCURRENTLY IF EXISTS ix_users_email_normalized",
                     "ALTER TABLE orders DROP COLUMN total_cents",
                     "ALTER TABLE product_translations DROP COLUMN slug",
                     "ALTER TABLE users DROP COLUMN email_normalized",
                     "UPDATE backfill_runs SET status='cancelled'",
                     "'unscheduled by downgrade of 0003_orders_total_cents'"):
        assert expected in script
    for statement, in_transaction, _ in concurrent_steps(script):
        assert not in_transaction, statement

    result = run_psql(psql_binary, pg_url, script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert current_revisions(pg_url) == (FOUNDATION,)
    # History stays (issue 21): the runs the upgrade completed are kept as they were.
    assert query(pg_url, "SELECT count(*) FROM backfill_runs WHERE status <> 'completed'") == [(0,)]
    assert query(pg_url, "SELECT count(*) FROM backfill_runs")[0][0] > 0
    assert query(pg_url, """SELECT column_name FROM information_schema.columns
                            WHERE column_name IN ('total_cents', 'slug', 'email_normalized')""") == []


# --- SQLite ---------------------------------------------------------------------------

def test_sqlite_offline_mode_is_one_clear_line(sqlite_url):
    result = alembic_sql(sqlite_url, "upgrade", "head")

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith("FAILED: offline scripts (--sql) are for PostgreSQL only, not sqlite")


def test_the_offline_downgrade_cancels_unfinished_runs_with_the_revision_as_reason(pg_url, psql_binary, tmp_path):
    upgrade(pg_url, "0005_users_email_normalized")  # three pending runs, no gate passed yet
    script = render_sql(pg_url, "downgrade", f"0005_users_email_normalized:{FOUNDATION}")
    result = run_psql(psql_binary, pg_url, script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert query(pg_url, "SELECT name, status FROM backfill_runs ORDER BY name") == [
        ("orders_total_cents", "cancelled"), ("translation_slugs", "cancelled"), ("users_email_normalized", "cancelled")]
    assert query(pg_url, """SELECT r.name, t.from_status, t.actor, t.reason FROM backfill_transitions t
                            JOIN backfill_runs r ON r.id = t.run_id WHERE t.to_status = 'cancelled'
                            ORDER BY r.name""") == [
        ("orders_total_cents", "pending", "alembic downgrade", "unscheduled by downgrade of 0003_orders_total_cents"),
        ("translation_slugs", "pending", "alembic downgrade", "unscheduled by downgrade of 0004_translation_slugs"),
        ("users_email_normalized", "pending", "alembic downgrade",
         "unscheduled by downgrade of 0005_users_email_normalized")]
