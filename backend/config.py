"""Configuration read from the environment, with no Flask import.

`Config.from_env` is the one place the settings are read from the environment, the
backfill engine's and the revisions' lock retries included; the same object then
configures the Flask app, Alembic's env.py, the Celery worker and the command-line
scripts, so that they can never disagree about the database or the engine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from backend.backfill.webhook import parse_webhook_urls
from backend.backfill.settings import EngineSettings, SettingsError
from backend.migrations.lock_retries import LockRetrySettings
from backend.auth.admin_token import admin_token_problem, read_token_problem
from backend.auth.settings import SecuritySettings
from backend.logs import log_format_from_env
from backend.metrics.settings import MetricsSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "instance" / "shop.db"


class ConfigError(ValueError):
    """A setting in the environment is invalid; the message names it."""


def normalize_database_url(url: str) -> str:
    """`postgres://` and `postgresql://` (as hosting platforms write them) mean the
    psycopg2 driver we ship; SQLAlchemy 2.1 would otherwise pick psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _split_csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    database_url: str
    supported_locales: tuple[str, ...] = ("en", "de", "fr", "es", "ja")
    default_locale: str = "en"
    celery_broker_url: str | None = None
    admin_api_token: str | None = None
    admin_read_token: str | None = None  # ADMIN_READ_TOKEN: the progress routes only (backend.auth.admin_token)
    backfill_modules: tuple[str, ...] = field(default_factory=tuple)
    # The engine's leases, maintenance windows, throttling and health thresholds, and
    # the revisions' lock_timeout and retries. Checked at start-up by every entry
    # point (app, CLI, worker), so a typo never silently means "always open".
    engine_settings: EngineSettings = field(default_factory=EngineSettings)
    lock_retry_settings: LockRetrySettings = field(default_factory=LockRetrySettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    log_format: str = "text"  # LOG_FORMAT: text or json (backend.logs)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)  # backend.metrics.settings
    # BACKFILL_NOTIFY_WEBHOOK_URL: where each run's status changes are POSTed (backend.backfill.notify)
    notify_webhook_urls: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ
        database_url = normalize_database_url(env.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}")
        locales = _split_csv(env.get("SUPPORTED_LOCALES", "en,de,fr,es,ja"))
        if not locales:
            raise ConfigError("SUPPORTED_LOCALES is empty; give a comma-separated list such as 'en,de'")
        default_locale = env.get("DEFAULT_LOCALE", "en").strip()
        if default_locale not in locales:
            raise ConfigError(
                f"DEFAULT_LOCALE={default_locale!r} is not one of SUPPORTED_LOCALES ({', '.join(locales)})"
            )
        try:
            engine_settings = EngineSettings.from_env(env)
            lock_retry_settings = LockRetrySettings.from_env(env)
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        try:
            log_format = log_format_from_env(env)
            metrics = MetricsSettings.from_env(env)
            notify_webhook_urls = parse_webhook_urls(env.get("BACKFILL_NOTIFY_WEBHOOK_URL"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        token = env.get("ADMIN_API_TOKEN") or None
        read_token = env.get("ADMIN_READ_TOKEN") or None
        # Too short to resist guessing, not sendable in HTTP, or the read token equal to the admin one.
        problem = admin_token_problem(token) or read_token_problem(read_token, token)
        if problem:
            raise ConfigError(problem)
        try:
            security = SecuritySettings.from_env(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            database_url=database_url,
            supported_locales=locales,
            default_locale=default_locale,
            celery_broker_url=env.get("CELERY_BROKER_URL") or None,
            admin_api_token=token,
            admin_read_token=read_token,
            backfill_modules=_split_csv(env.get("BACKFILL_MODULES", "")),
            engine_settings=engine_settings,
            lock_retry_settings=lock_retry_settings,
            security=security,
            log_format=log_format,
            metrics=metrics,
            notify_webhook_urls=notify_webhook_urls,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
