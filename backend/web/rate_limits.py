"""Rate limits (Flask-Limiter): log-in and sign-up attempts, and failed
authentications on the operations API.

Counters live in Redis when CELERY_BROKER_URL names a Redis server (every gunicorn
worker and replica then counts together), in this process's memory otherwise. If
Redis stops answering, the limits go on in memory until it is back, rather than
failing the requests. Clients are told apart by address: behind reverse proxies,
set TRUSTED_PROXIES so that the address is the client's, not the proxy's.
"""
from __future__ import annotations

import hashlib

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from backend.config import Config
from backend.text import normalize_email

KEY_PREFIX = "shop-limits"


def storage_uri(config: Config) -> str:
    broker = config.celery_broker_url or ""
    return broker if broker.startswith(("redis://", "rediss://", "unix://")) else "memory://"


def init_app(app: Flask, config: Config) -> Limiter:
    """A limiter for this app, with the limits of `config.security` on their routes."""
    limiter = Limiter(get_remote_address, app=app, storage_uri=storage_uri(config), key_prefix=KEY_PREFIX,
                      headers_enabled=True, in_memory_fallback_enabled=True, swallow_errors=True)
    security = config.security
    _limit(app, "auth.login", limiter.limit(security.login_rate_limit, scope="login"))
    _limit(app, "auth.login", limiter.limit(security.login_account_rate_limit, key_func=_login_account,
                                            scope="login-account"))
    _limit(app, "orders.create_user", limiter.limit(security.signup_rate_limit, scope="signup"))
    # Only failures count: an operator with the right token is never slowed down,
    # but once a client has failed too often it is refused (429) until the window passes.
    limiter.limit(security.admin_auth_failure_rate_limit, scope="admin-auth-failures",
                  deduct_when=lambda response: response.status_code == 401)(app.blueprints["backfills_api"])
    app.extensions["shop_limiter"] = limiter
    return limiter


def _limit(app: Flask, endpoint: str, limit) -> None:
    """Apply a limit to a registered view: the limiter's wrapper replaces the view
    (limits are per app, so the routes' modules cannot be decorated at import)."""
    app.view_functions[endpoint] = limit(app.view_functions[endpoint])


def _login_account() -> str:
    """The account a log-in tries, as a digest of its email key (no address is stored
    in Redis); the client's address for a body without one."""
    payload = request.get_json(silent=True)
    email = payload.get("email") if isinstance(payload, dict) else None
    if not isinstance(email, str) or not email.strip():
        return get_remote_address()
    return hashlib.sha256(normalize_email(email).encode("utf-8", "surrogatepass")).hexdigest()
