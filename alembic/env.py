"""Alembic environment: URL from the app's configuration, metadata from the models.

Every online run holds the schema lock (PostgreSQL advisory lock / SQLite file lock)
so that several processes upgrading at once apply each revision exactly once. On
PostgreSQL every statement of a revision runs under a short lock_timeout, and a
revision that times out is rolled back and tried again (backend.migrations.lock_retries).
"""
import contextlib
import logging
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy.engine import Connection, make_url

from backend.config import ConfigError, normalize_database_url
from backend.db import create_db_engine
from backend.logs import configure_logging, log_format_from_env
from backend.metrics import events
from backend.migrations import run_config
from backend.migrations.lock import schema_lock
from backend.migrations.lock_retries import LockRetrySettings, run_with_lock_retries
from backend.migrations.metadata import target_metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
    configure_logging(log_format_from_env())  # LOG_FORMAT=json replaces alembic.ini's handler


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or run_config.of(config).database_url


def _configure(connection=None, **kwargs) -> None:
    dialect = connection.dialect.name if connection is not None else kwargs.get("dialect_name")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=(dialect == "sqlite"),
        # backend.db gives SQLite real BEGIN/COMMIT, so its DDL is transactional too.
        transactional_ddl=True if dialect == "sqlite" else None,
        compare_type=True,
        transaction_per_migration=True,
        # lets backend.migrations.upgrade report exactly which revisions this run applied
        on_version_apply=events.revision_timer(config.attributes.get("on_version_apply")),  # + metrics
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: the script a DBA reviews, then runs with psql."""
    url = normalize_database_url(_database_url())
    dialect = make_url(url).get_backend_name()
    if dialect != "postgresql":
        raise CommandError(
            f"offline scripts (--sql) are for PostgreSQL only, not {dialect} (SQLite's batch-mode table copies "
            f"need the live database): set DATABASE_URL to the PostgreSQL database the script is for, "
            f"or migrate this one online with `alembic upgrade head`")
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, dialect_name=dialect)
    _set_offline_lock_timeout()
    with context.begin_transaction():
        context.run_migrations()


def _set_offline_lock_timeout() -> None:
    """Once, before the first revision's BEGIN: the script has no retries, but its DDL
    still must not queue the shop behind a long transaction (a timeout stops psql)."""
    try:
        timeout_ms = _lock_settings().timeout_ms
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    context.execute(f"SET lock_timeout = '{timeout_ms}ms'")


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):  # a caller's own connection and transaction
        _run_locked(connectable)
        return
    # pytest-alembic passes an Engine; otherwise we build our own from the URL.
    engine = connectable if connectable is not None else create_db_engine(_database_url())
    try:
        with engine.connect() as connection:
            _run_locked(connection)
    finally:
        if connectable is None:
            engine.dispose()


def _run_locked(connection) -> None:
    with schema_lock(connection.engine), _sqlite_foreign_keys_off(connection):
        if connection.dialect.name != "postgresql":
            _run_migrations(connection)
        elif connection.in_transaction():  # a caller's transaction: no retry can undo part of it
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{_lock_settings().timeout_ms}ms'")
            _run_migrations(connection)
        else:
            run_with_lock_retries(connection, lambda: _run_migrations(connection), _lock_settings(), _on_lock_wait)


def _run_migrations(connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _lock_settings() -> LockRetrySettings:
    return run_config.of(config).lock_retry_settings


def _on_lock_wait(message: str) -> None:
    """Reported to whoever drives the upgrade (run_migrations.py prints it), else logged."""
    report = config.attributes.get("on_lock_wait")
    if report is not None:
        report(message)
    else:
        logging.getLogger("alembic.runtime.migration").warning(message)


@contextlib.contextmanager
def _sqlite_foreign_keys_off(connection):
    """Batch mode rebuilds a SQLite table by copy, DROP and rename; with foreign
    keys on, that DROP would run ON DELETE CASCADE and empty every child table.
    The pragma only takes effect outside a transaction; the integrity of the
    result is checked before foreign keys come back on."""
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield
        return
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
        violations = raw.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise RuntimeError(f"foreign key violations after migrating: {violations[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
