"""Engine settings, from the environment (read once, by backend.config.Config.from_env,
which hands them to the engine as `Config.engine_settings`).

The batch lease must stay far below the broker's visibility timeout (Redis
redelivers an unacknowledged message after it), and the statement timeout below
the lease, so that a batch can never outlive its claim. Maintenance windows,
throttling and health thresholds are global here; a backfill may override them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from backend.backfill.windows import WindowSchedule, WindowSpecError, parse_windows

DEFAULT_HEALTH_CHECKS = ("replication_lag", "long_transactions", "lock_waits")


class SettingsError(ValueError):
    pass


def _number(env: Mapping[str, str], name: str, default: float | None, minimum: float) -> float | None:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name}={raw!r} is not a finite number")
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def whole_number(env: Mapping[str, str], name: str, default: int | None, minimum: int) -> int | None:
    """A count from the environment (also for the schema side's lock settings)."""
    value = _number(env, name, default, minimum)
    if value is not None and value != int(value):
        raise SettingsError(f"{name}={env.get(name)!r} is not a whole number")
    return None if value is None else int(value)


@dataclass(frozen=True)
class EngineSettings:
    lease_seconds: float = 120.0
    redispatch_after_seconds: float = 60.0
    # A running run nobody works on for this long is reported as stalled (backfill/stall.py)
    stall_seconds: float = 30.0
    retry_backoff_seconds: float = 1.0
    retry_backoff_max_seconds: float = 30.0
    broker_visibility_timeout: float = 3600.0
    recovery_interval_seconds: float = 30.0  # the beat's recovery pass
    # Time and load
    maintenance_windows: WindowSchedule = field(default_factory=lambda: parse_windows(""))
    pause_seconds: float = 0.0
    target_batch_seconds: float | None = None  # None: fixed batch size
    min_batch_size: int = 100
    max_batch_size: int = 50_000
    health_checks: tuple[str, ...] = DEFAULT_HEALTH_CHECKS
    health_backoff_seconds: float = 30.0
    health_check_interval: float = 5.0  # a healthy answer is reused this long (0: before every batch)
    max_replication_lag_seconds: float = 30.0
    max_transaction_seconds: float = 600.0
    max_lock_wait_seconds: float = 5.0
    # In-process batches at once (None: the CPU cores); always capped by the run's max_parallel.
    inprocess_lanes: int | None = None

    @property
    def statement_timeout_ms(self) -> int:
        return int(self.lease_seconds * 1000 / 2)

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff for a batch that failed `attempts` times."""
        return min(self.retry_backoff_seconds * (2 ** max(attempts - 1, 0)), self.retry_backoff_max_seconds)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "EngineSettings":
        try:
            windows = parse_windows(env.get("MAINTENANCE_WINDOWS", ""))
        except WindowSpecError as exc:
            raise SettingsError(f"MAINTENANCE_WINDOWS: {exc}") from None
        checks = tuple(c.strip() for c in env.get("BACKFILL_HEALTH_CHECKS", ",".join(DEFAULT_HEALTH_CHECKS)).split(",")
                       if c.strip())
        settings = cls(
            lease_seconds=_number(env, "BACKFILL_LEASE_SECONDS", 120.0, 1.0),
            redispatch_after_seconds=_number(env, "BACKFILL_REDISPATCH_AFTER_SECONDS", 60.0, 1.0),
            stall_seconds=_number(env, "BACKFILL_STALL_SECONDS", 30.0, 1.0),
            retry_backoff_seconds=_number(env, "BACKFILL_RETRY_BACKOFF_SECONDS", 1.0, 0.0),
            retry_backoff_max_seconds=_number(env, "BACKFILL_RETRY_BACKOFF_MAX_SECONDS", 30.0, 0.0),
            broker_visibility_timeout=_number(env, "CELERY_VISIBILITY_TIMEOUT", 3600.0, 10.0),
            recovery_interval_seconds=_number(env, "BACKFILL_RECOVERY_INTERVAL", 30.0, 1.0),
            maintenance_windows=windows,
            pause_seconds=_number(env, "BACKFILL_PAUSE_SECONDS", 0.0, 0.0),
            target_batch_seconds=_number(env, "BACKFILL_TARGET_BATCH_SECONDS", None, 0.001),
            min_batch_size=int(_number(env, "BACKFILL_MIN_BATCH_SIZE", 100, 1)),
            max_batch_size=int(_number(env, "BACKFILL_MAX_BATCH_SIZE", 50_000, 1)),
            health_checks=checks,
            health_backoff_seconds=_number(env, "BACKFILL_HEALTH_BACKOFF_SECONDS", 30.0, 1.0),
            health_check_interval=_number(env, "BACKFILL_HEALTH_CHECK_INTERVAL", 5.0, 0.0),
            max_replication_lag_seconds=_number(env, "BACKFILL_MAX_REPLICATION_LAG_SECONDS", 30.0, 0.0),
            max_transaction_seconds=_number(env, "BACKFILL_MAX_TRANSACTION_SECONDS", 600.0, 1.0),
            max_lock_wait_seconds=_number(env, "BACKFILL_MAX_LOCK_WAIT_SECONDS", 5.0, 0.0),
            inprocess_lanes=whole_number(env, "BACKFILL_INPROCESS_LANES", None, 1),
        )
        if settings.lease_seconds * 4 > settings.broker_visibility_timeout:
            raise SettingsError(
                f"BACKFILL_LEASE_SECONDS={settings.lease_seconds:g} must stay under a quarter of the broker "
                f"visibility timeout ({settings.broker_visibility_timeout:g}s), or Redis would redeliver batches in flight"
            )
        if settings.min_batch_size > settings.max_batch_size:
            raise SettingsError(
                f"BACKFILL_MIN_BATCH_SIZE={settings.min_batch_size} is above BACKFILL_MAX_BATCH_SIZE={settings.max_batch_size}"
            )
        if settings.pause_seconds * 4 > settings.broker_visibility_timeout:
            raise SettingsError("BACKFILL_PAUSE_SECONDS must stay far below the broker visibility timeout")
        return settings
