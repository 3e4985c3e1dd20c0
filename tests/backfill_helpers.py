"""Helpers shared by the backfill tests."""
from __future__ import annotations

import contextlib
from typing import Iterator

import sqlalchemy as sa
from flask import Flask

from backend import create_app
from backend.config import Config

from backend.backfill.registry import load_catalog
from backend.backfill.service import BackfillService
from backend.backfill.settings import EngineSettings
from backend.db import create_db_engine
from tests import backfills_for_tests

FAST_SETTINGS = EngineSettings(lease_seconds=3, redispatch_after_seconds=2, retry_backoff_seconds=0.05,
                               retry_backoff_max_seconds=0.2)


def make_service(url: str, settings: EngineSettings = FAST_SETTINGS) -> BackfillService:
    catalog = load_catalog(["tests.backfills_for_tests"])
    return BackfillService(create_db_engine(url), catalog, settings)


def touch_service(url: str, settings: EngineSettings = FAST_SETTINGS) -> BackfillService:
    """A service over a database at head with the test backfills' tables (close it with
    `service.engine.dispose()`)."""
    from backend.migrations.alembic_api import upgrade

    upgrade(url, "head")
    service = make_service(url, settings)
    create_touch_tables(service.engine)
    return service


def create_touch_tables(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for statement in backfills_for_tests.CREATE_TABLES:
            connection.exec_driver_sql(statement)
        uuid_type = "UUID" if connection.dialect.name == "postgresql" else "CHAR(32)"
        connection.exec_driver_sql(
            f"CREATE TABLE touch_uuid (id {uuid_type} PRIMARY KEY, touched INTEGER NOT NULL DEFAULT 0)"
        )


def insert_rows(engine: sa.Engine, ids) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(backfills_for_tests.touch_rows), [{"id": i, "touched": 0} for i in ids])


def touched(engine: sa.Engine, table: str = "touch_rows", key: str = "id") -> dict:
    with engine.connect() as connection:
        return dict(connection.exec_driver_sql(f"SELECT {key}, touched FROM {table} ORDER BY {key}").all())


@contextlib.contextmanager
def touch_database(request, tmp_path_factory, name: str, rows: int) -> Iterator[str]:
    """For a module fixture parametrized over ["sqlite", "postgresql"]: a database at
    head with touch_rows 1..rows, dropped after the module."""
    from tests.conftest import create_pg_database, drop_pg_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'shop.db'}"
    else:
        request.getfixturevalue("postgres_available")
        url = create_pg_database()
    try:
        service = touch_service(url)
        insert_rows(service.engine, range(1, rows + 1))
        service.engine.dispose()
        yield url
    finally:
        if request.param == "postgresql":
            drop_pg_database(url)


def operations_app(url: str, token: str | None, **env: str) -> Flask:
    """The app with the test backfills and the operations API on `token`. Wrong
    tokens are sent on purpose in these tests; the throttling of failures has its own
    test (tests/security/test_admin_token_policy.py)."""
    settings = {"DATABASE_URL": url, "BACKFILL_MODULES": "tests.backfills_for_tests",
                "ADMIN_AUTH_FAILURE_RATE_LIMIT": "100000 per minute", **env}
    if token is not None:
        settings["ADMIN_API_TOKEN"] = token
    return create_app(Config.from_env(settings))


def poison(service, *ids) -> None:
    """test_touch raises in a batch whose range holds one of these ids."""
    with service.engine.begin() as connection:
        for row_id in ids:
            connection.exec_driver_sql(f"INSERT INTO touch_poison (id) VALUES ({int(row_id)})")
