"""Shared fixtures: throwaway SQLite files and PostgreSQL databases.

PostgreSQL tests create their own database on the server named by TEST_POSTGRES_URL
(default: the local trust-auth server) and drop it afterwards. Without a reachable
server they are skipped, except in CI (CI=true), where they fail instead.
"""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from backend.migrations.alembic_api import upgrade
from backend.migrations.safety.databases import create_scratch_database, drop_scratch_database

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str, exc: Exception):
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it")
    pytest.skip(message)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_available() -> None:
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    finally:
        engine.dispose()


def create_pg_database() -> str:
    """Create an empty database and return its URL (callers drop it with drop_pg_database)."""
    return create_scratch_database(POSTGRES_ADMIN_URL, "shoptest")


def drop_pg_database(url: str) -> None:
    drop_scratch_database(url)


@pytest.fixture
def pg_url(postgres_available) -> str:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def migrated_db_url(db_url) -> str:
    """A database of each kind upgraded to head."""
    upgrade(db_url, "head")
    return db_url


@pytest.fixture(scope="session")
def redis_available() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


# --- the fault soak (tests/faults/test_soak.py) --------------------------------------------
# Minutes of random faults: never part of a default run (`make test`, CI); selected
# only with `-m soak`, e.g. `python -m pytest tests/faults/test_soak.py -m soak --soak-minutes 10`.

SOAK_REPORT = os.path.join(os.path.dirname(__file__), "faults", "soak-last-run.md")


def pytest_addoption(parser):
    group = parser.getgroup("soak", "fault soak (tests/faults/test_soak.py, run with -m soak)")
    group.addoption("--soak-minutes", type=float, default=10.0,
                    help="minutes of faults (default 10; 1 for a smoke run)")
    group.addoption("--soak-seed", type=int, default=None, help="seed of the fault sequence (default: random)")
    group.addoption("--soak-report", default=SOAK_REPORT, help=f"where the summary goes (default {SOAK_REPORT})")


def pytest_collection_modifyitems(config, items):
    """Deselect soak tests unless the -m expression names them; give selected ones a
    timeout sized to their minutes (the ini's 300 s would cut them)."""
    soak = [item for item in items if item.get_closest_marker("soak")]
    if not soak:
        return
    if "soak" not in (config.option.markexpr or ""):
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]
        return
    seconds = int(config.getoption("--soak-minutes") * 60 * 2 + 900)
    for item in soak:
        item.add_marker(pytest.mark.timeout(seconds))
