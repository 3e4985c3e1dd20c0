"""Alembic driven from Python: the same alembic.ini and env.py as the `alembic`
command, pointed at a given database URL."""
from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from backend.config import PROJECT_ROOT
from backend.db import create_db_engine

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(database_url: str, *, quiet: bool = True) -> AlembicConfig:
    cfg = AlembicConfig(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = not quiet
    return cfg


def script_directory(database_url: str = "sqlite://") -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(database_url))


def head_revisions(database_url: str = "sqlite://") -> tuple[str, ...]:
    return tuple(script_directory(database_url).get_heads())


def current_revisions(database_url: str) -> tuple[str, ...]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return tuple(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def upgrade(database_url: str, target: str = "head", *, on_version_apply=None, on_lock_wait=None) -> None:
    """`on_version_apply(ctx=, step=, heads=, run_args=)` is called after each revision
    this process applies (under the schema lock), so callers can report them;
    `on_lock_wait(message)` hears of each lock timeout that is retried."""
    cfg = alembic_config(database_url)
    cfg.attributes["on_version_apply"] = on_version_apply
    cfg.attributes["on_lock_wait"] = on_lock_wait
    command.upgrade(cfg, target)


def downgrade(database_url: str, target: str) -> None:
    command.downgrade(alembic_config(database_url), target)
