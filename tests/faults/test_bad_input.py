"""Bad input to the command line and to the engine's API: unknown backfill names,
unknown run ids, illegal transitions and SQL metacharacters. Each gets a clear
error (CLI: one line on stderr and a non-zero exit) and the database is unchanged:
a dump of every table (columns and rows) and sequence is compared before and after.

(The HTTP API's bad-input tests live with the API.)
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import run_migrations
from backend.backfill.registry import UnknownBackfill
from backend.backfill.runs import RunNotFound
from backend.backfill.model import IllegalTransition, RunStatus
from backend.migrations.alembic_api import current_revisions, upgrade
from tests.conftest import create_pg_database, drop_pg_database
from tests.backfill_helpers import create_touch_tables, insert_rows, make_service
from tests.faults.support import dump_database
from tests.processes import ROOT, subprocess_env
from tests.shop_data import seed_shop

FOUNDATION = "0002_backfill_state"
HOSTILE_NAMES = [
    "x'; DROP TABLE users;--",
    'test_touch"; DELETE FROM backfill_runs; --',
    "' OR '1'='1",
    "test_touch' --",
    "test_touch; TRUNCATE orders",
    "%",
    "_",
    "\\",
    "$(touch /tmp/pwned) `id`",
    "ünïcødé 名前 🙂",
    "line\nbreak",
    "",
    "a" * 5000,
]


@pytest.fixture(scope="module")
def shop(postgres_available):
    """A shop seeded on the foundation revision, with a scheduled test backfill; one
    database for the module, since every test here proves it leaves it unchanged."""
    url = create_pg_database()
    try:
        upgrade(url, FOUNDATION)
        service = make_service(url)
        seed_shop(service.engine, orders=20)
        create_touch_tables(service.engine)
        insert_rows(service.engine, range(1, 21))
        service.schedule("test_touch")
        yield service
        service.engine.dispose()
    finally:
        drop_pg_database(url)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), repr(stderr)
    assert stderr.startswith("Error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def test_sql_in_only_as_users_type_it_changes_nothing(shop):
    """The real script, as a subprocess: `--only "x'; DROP TABLE users;--"`."""
    before = dump_database(shop.engine)
    result = subprocess.run(
        [sys.executable, "run_migrations.py", "--batched", "--only", "x'; DROP TABLE users;--"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=subprocess_env(DATABASE_URL=shop.engine.url.render_as_string(hide_password=False),
                           BACKFILL_MODULES="tests.backfills_for_tests", CELERY_BROKER_URL=""),
    )
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "unknown backfill", "DROP TABLE users")
    assert dump_database(shop.engine) == before
    assert current_revisions(str(shop.engine.url.render_as_string(hide_password=False))) == (FOUNDATION,)


def invoke(url: str, *args: str):
    return CliRunner().invoke(run_migrations.main, ["--database-url", url, *args],
                              env={"BACKFILL_MODULES": "tests.backfills_for_tests", "CELERY_BROKER_URL": ""})


@pytest.mark.parametrize("mode", ["--batched", "--status"])
def test_hostile_backfill_names_are_one_line_errors(shop, mode):
    url = shop.engine.url.render_as_string(hide_password=False)
    before = dump_database(shop.engine)
    for name in HOSTILE_NAMES:
        result = invoke(url, mode, f"--only={name}")
        assert result.exit_code == 1, (name, result.output)
        assert_one_line_error(result.stderr, "unknown backfill")
    assert dump_database(shop.engine) == before


def test_hostile_database_url_is_a_one_line_error(shop):
    url = shop.engine.url
    before = dump_database(shop.engine)
    hostile = url.set(database=f"{url.database}'; DROP DATABASE \"{url.database}\";--") \
        .render_as_string(hide_password=False)
    result = invoke(hostile, "--batched")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "database error")
    assert dump_database(shop.engine) == before


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=0, max_size=80))
def test_any_unknown_backfill_name_is_a_one_line_error(shop, name):
    assume(name not in shop.catalog)
    result = invoke(shop.engine.url.render_as_string(hide_password=False), "--batched", f"--only={name}")
    assert result.exit_code == 1, result.output
    assert_one_line_error(result.stderr, "unknown backfill")


RUN_IDS = [0, -1, 987654, 2**63 - 1, 2**63, 10**30]


def test_unknown_run_ids_are_refused_and_change_nothing(shop):
    before = dump_database(shop.engine)
    for run_id in RUN_IDS:
        assert_every_control_refuses(shop, run_id)
    assert dump_database(shop.engine) == before


def assert_every_control_refuses(shop, run_id: int) -> None:
    controls = [
        lambda: shop.get_run(run_id),
        lambda: shop.transitions(run_id),
        lambda: shop.snapshot(run_id),
        lambda: shop.pause(run_id, actor="fault-suite"),
        lambda: shop.resume(run_id, actor="fault-suite"),
        lambda: shop.cancel(run_id, actor="fault-suite"),
        lambda: shop.retry_failed(run_id, actor="fault-suite"),
    ]
    for control in controls:
        with pytest.raises(RunNotFound, match=f"no backfill run {run_id}"):
            control()


def test_illegal_transitions_are_refused_and_change_nothing(shop):
    running = shop.schedule("test_touch")
    assert shop.start(running, executor="inprocess").status == RunStatus.RUNNING
    finished = shop.schedule("test_touch_filtered")
    shop.transition(finished, RunStatus.CANCELLED, actor="fault-suite")
    before = dump_database(shop.engine)
    refused = [
        (running, lambda r: shop.resume(r, actor="fault-suite")),          # running -> running
        (running, lambda r: shop.retry_failed(r, actor="fault-suite")),    # only a failed run retries
        (finished, lambda r: shop.pause(r, actor="fault-suite")),
        (finished, lambda r: shop.resume(r, actor="fault-suite")),
        (finished, lambda r: shop.cancel(r, actor="fault-suite")),
        (finished, lambda r: shop.retry_failed(r, actor="fault-suite")),
        (running, lambda r: shop.transition(r, "exploded", actor="fault-suite")),
        (running, lambda r: shop.transition(r, "running'; DROP TABLE users;--", actor="fault-suite")),
    ]
    for run_id, control in refused:
        status = shop.get_run(run_id).status
        with pytest.raises(IllegalTransition, match=f"run {run_id} is {status}; it cannot become "):
            control(run_id)
    assert dump_database(shop.engine) == before


def test_hostile_names_in_the_engine_api(shop):
    before = dump_database(shop.engine)
    for name in HOSTILE_NAMES:
        with pytest.raises(UnknownBackfill):
            shop.schedule(name)
        assert shop.list_runs(name=name) == [] and shop.list_runs(status=name) == []
        assert shop.unfinished_runs(only=[name]) == []
    assert dump_database(shop.engine) == before
