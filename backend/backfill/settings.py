"""Engine timing settings, from the environment.

The batch lease must stay far below the broker's visibility timeout (Redis
redelivers an unacknowledged message after it), and the statement timeout below
the lease, so that a batch can never outlive its claim.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


class SettingsError(ValueError):
    pass


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class EngineSettings:
    lease_seconds: float = 120.0
    redispatch_after_seconds: float = 60.0
    retry_backoff_seconds: float = 1.0
    retry_backoff_max_seconds: float = 30.0
    broker_visibility_timeout: float = 3600.0

    @property
    def statement_timeout_ms(self) -> int:
        return int(self.lease_seconds * 1000 / 2)

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff for a batch that failed `attempts` times."""
        return min(self.retry_backoff_seconds * (2 ** max(attempts - 1, 0)), self.retry_backoff_max_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "EngineSettings":
        env = os.environ if environ is None else environ
        settings = cls(
            lease_seconds=_number(env, "BACKFILL_LEASE_SECONDS", 120.0, 1.0),
            redispatch_after_seconds=_number(env, "BACKFILL_REDISPATCH_AFTER_SECONDS", 60.0, 1.0),
            retry_backoff_seconds=_number(env, "BACKFILL_RETRY_BACKOFF_SECONDS", 1.0, 0.0),
            retry_backoff_max_seconds=_number(env, "BACKFILL_RETRY_BACKOFF_MAX_SECONDS", 30.0, 0.0),
            broker_visibility_timeout=_number(env, "CELERY_VISIBILITY_TIMEOUT", 3600.0, 10.0),
        )
        if settings.lease_seconds * 4 > settings.broker_visibility_timeout:
            raise SettingsError(
                f"BACKFILL_LEASE_SECONDS={settings.lease_seconds:g} must stay under a quarter of the broker "
                f"visibility timeout ({settings.broker_visibility_timeout:g}s), or Redis would redeliver batches in flight"
            )
        return settings
