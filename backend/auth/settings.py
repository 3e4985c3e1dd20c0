"""Security settings read from the environment (part of backend.config.Config).

    SECRET_KEY                    signs customers' access and refresh tokens; at least 32
                                  characters. Unset: a random key per process (tokens die
                                  with the process and do not work across gunicorn workers)
    TRUSTED_HOSTS                 comma-separated host names the app answers (Flask's
                                  TRUSTED_HOSTS; `.example.com` allows subdomains); unset: any
    TRUSTED_PROXIES               how many reverse proxies in front set X-Forwarded-For (0:
                                  none, the client is the peer address); rate limits key on it
    LOGIN_RATE_LIMIT              log-in attempts per client address (default 10 per minute)
    LOGIN_ACCOUNT_RATE_LIMIT      log-in attempts per email address (default 30 per hour)
    SIGNUP_RATE_LIMIT             sign-ups per client address (default 20 per hour)
    ADMIN_AUTH_FAILURE_RATE_LIMIT failed operations-API authentications per client address
                                  (default 10 per minute); then 429 for that client

Rate limits use the `limits` notation ("10 per minute", "100/hour; 1000/day").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from limits import parse_many

MIN_SECRET_KEY_LENGTH = 32


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        parse_many(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a rate limit; write e.g. '10 per minute' "
                         "or '100/hour; 1000/day'") from None
    return value


def _hosts(value: str) -> tuple[str, ...]:
    hosts = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    for host in hosts:
        if "/" in host or " " in host:
            raise ValueError(f"TRUSTED_HOSTS: {host!r} is not a host name (give names like "
                             "'shop.example.com' or '.example.com', no scheme or path)")
    return hosts


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str | None = None
    trusted_hosts: tuple[str, ...] = ()
    trusted_proxies: int = 0
    login_rate_limit: str = "10 per minute"
    login_account_rate_limit: str = "30 per hour"
    signup_rate_limit: str = "20 per hour"
    admin_auth_failure_rate_limit: str = "10 per minute"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SecuritySettings":
        """Raises ValueError with a one-line message naming the setting."""
        secret_key = env.get("SECRET_KEY") or None
        if secret_key is not None and len(secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"SECRET_KEY is {len(secret_key)} characters, at least {MIN_SECRET_KEY_LENGTH} "
                             "are required (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        proxies = (env.get("TRUSTED_PROXIES") or "0").strip()
        if not (proxies.isascii() and proxies.isdigit()) or int(proxies) > 10:
            raise ValueError(f"TRUSTED_PROXIES={proxies!r} must be a whole number from 0 to 10")
        return cls(
            secret_key=secret_key,
            trusted_hosts=_hosts(env.get("TRUSTED_HOSTS") or ""),
            trusted_proxies=int(proxies),
            login_rate_limit=_rate_limit(env, "LOGIN_RATE_LIMIT", cls.login_rate_limit),
            login_account_rate_limit=_rate_limit(env, "LOGIN_ACCOUNT_RATE_LIMIT", cls.login_account_rate_limit),
            signup_rate_limit=_rate_limit(env, "SIGNUP_RATE_LIMIT", cls.signup_rate_limit),
            admin_auth_failure_rate_limit=_rate_limit(env, "ADMIN_AUTH_FAILURE_RATE_LIMIT",
                                                      cls.admin_auth_failure_rate_limit),
        )
