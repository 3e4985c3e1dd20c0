"""The app's configuration during an Alembic run.

env.py reads it once per run (Config.from_env) and keeps it in the Alembic config's
attributes; the revision helpers (backfill_ops, online) take it from there instead of
reading the environment again: the lock settings and backfill modules a revision sees
are the ones env.py checked.
"""
from __future__ import annotations

from alembic import context
from alembic.config import Config as AlembicConfig

from backend.config import Config

ATTRIBUTE = "shop_config"


def of(alembic_config: AlembicConfig) -> Config:
    """The run's configuration: the one a caller put in the attributes, else read now."""
    shop = alembic_config.attributes.get(ATTRIBUTE)
    if shop is None:
        shop = alembic_config.attributes[ATTRIBUTE] = Config.from_env()
    return shop


def current() -> Config:
    """Inside env.py or a revision: the configuration of the run in progress. Outside
    an Alembic run (a test calling a helper directly), the environment's."""
    alembic_config = getattr(context, "config", None)  # set only while an Alembic run is in progress
    return Config.from_env() if alembic_config is None else of(alembic_config)
