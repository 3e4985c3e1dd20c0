"""Database health checks run before each batch; a tripped check makes the run back
off (status `waiting`, the reason in `wait_reason`) until health returns.

A check is a function `(connection, backfill, settings) -> str | None`: None when
healthy, else a short reason. The built-in ones read PostgreSQL's statistics views
and do nothing on SQLite. Register more with `register_health_check`.
"""
from __future__ import annotations

from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.settings import SettingsError
from backend.metrics import events

HealthCheck = Callable[[Connection, object, object], "str | None"]
# One per process on purpose, like the backfill catalog: checks register when their
# module is imported.
_checks: dict[str, HealthCheck] = {}


class UnknownHealthCheck(LookupError):
    pass


def register_health_check(name: str):
    def decorator(function: HealthCheck) -> HealthCheck:
        _checks[name] = function
        return function

    return decorator


def get_health_check(name: str) -> HealthCheck:
    try:
        return _checks[name]
    except KeyError:
        known = ", ".join(sorted(_checks))
        raise UnknownHealthCheck(f"unknown health check {name!r} (known: {known})") from None


def require_known(names, where: str) -> None:
    """Stop at start-up on a check name nobody registered (a typo would otherwise
    fail the first batch of every run, or never check anything)."""
    for name in names:
        try:
            get_health_check(name)
        except UnknownHealthCheck as exc:
            raise SettingsError(f"{where}: {exc}") from None


def first_problem(connection: Connection, backfill, settings, names) -> tuple[str, str] | None:
    """(check name, reason) of the first tripped check, or None when all are healthy."""
    for name in names:
        reason = get_health_check(name)(connection, backfill, settings)
        if reason:
            events.health_check_tripped(name)
            return name, reason
    return None


def _postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


@register_health_check("replication_lag")
def replication_lag(connection, backfill, settings) -> str | None:
    if not _postgresql(connection):
        return None
    lag = connection.execute(
        sa.text("SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication")
    ).scalar()
    if lag is not None and lag > settings.max_replication_lag_seconds:
        return f"replication lag {lag:.0f}s > {settings.max_replication_lag_seconds:g}s"
    return None


@register_health_check("long_transactions")
def long_transactions(connection, backfill, settings) -> str | None:
    """An old open transaction holds back vacuum: our batches would only add bloat."""
    if not _postgresql(connection):
        return None
    row = connection.execute(sa.text(
        "SELECT pid, extract(epoch FROM now() - xact_start) AS age FROM pg_stat_activity "
        "WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND state <> 'idle' "
        "AND backend_type = 'client backend' ORDER BY xact_start LIMIT 1"
    )).first()
    if row is not None and row.age > settings.max_transaction_seconds:
        return f"transaction of pid {row.pid} open for {row.age:.0f}s > {settings.max_transaction_seconds:g}s"
    return None


@register_health_check("lock_waits")
def lock_waits(connection, backfill, settings) -> str | None:
    """Sessions queued for locks on the backfilled table: the shop is contending with us."""
    if not _postgresql(connection):
        return None
    row = connection.execute(sa.text(
        "SELECT count(*) AS waiting, max(extract(epoch FROM now() - waitstart)) AS longest FROM pg_locks "
        "WHERE NOT granted AND relation = to_regclass(:table)"
    ), {"table": backfill.table.name}).first()
    if row.waiting and (row.longest or 0) > settings.max_lock_wait_seconds:
        return (f"{row.waiting} session(s) waiting for locks on {backfill.table.name} "
                f"for up to {row.longest:.0f}s > {settings.max_lock_wait_seconds:g}s")
    return None
