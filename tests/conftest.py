"""Shared fixtures: throwaway SQLite files and PostgreSQL databases.

PostgreSQL tests create their own database on the server named by TEST_POSTGRES_URL
(default: the local trust-auth server) and drop it afterwards. Without a reachable
server they are skipped, except in CI (CI=true), where they fail instead.
"""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from backend.schema.alembic_api import upgrade
from backend.schema.safety.databases import create_scratch_database, drop_scratch_database

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
