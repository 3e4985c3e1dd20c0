"""Customers' bearer tokens, with Flask-JWT-Extended: what the shop routes accept.

Why signed tokens and not cookies: the shop is a JSON API for apps and scripts, not
pages; a token sent in `Authorization: Bearer` is never attached by a browser on its
own, so there is no CSRF to defend against, and no cookie settings to get wrong.

- Access tokens (JWT, HS256 with SECRET_KEY) live 15 minutes and are sent on every
  call. Refresh tokens live 30 days and are only accepted by POST /api/auth/refresh,
  which swaps them for a new pair.
- Both name a server-side session (backend.auth.sessions, claim `sid`): log-out and
  a password change revoke it, and the tokens stop working at once, not when they
  expire. A refresh token used twice revokes its session.
- Tokens are accepted from the Authorization header only (never a query string,
  which ends up in logs).
"""
from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from flask import Flask, Response, current_app
from flask_jwt_extended import (
    JWTManager, create_access_token, create_refresh_token, get_jwt, get_jwt_identity, jwt_required,
)

from backend.auth import sessions
from backend.auth.passwords import warm_up
from backend.auth.settings import SecuritySettings
from backend.web.database import get_session
from backend.web.errors import error_response

ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
CHALLENGE = 'Bearer realm="shop"'


def init_app(app: Flask, settings: SecuritySettings) -> None:
    secret = settings.secret_key
    if secret is None:
        secret = secrets.token_urlsafe(48)
        app.logger.warning("SECRET_KEY is not set: customers' tokens are signed with a random key that ends "
                           "with this process (set SECRET_KEY for several workers or restarts)")
    app.config.update(
        JWT_SECRET_KEY=secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=ACCESS_TOKEN_LIFETIME,
        JWT_REFRESH_TOKEN_EXPIRES=sessions.SESSION_LIFETIME,
    )
    manager = JWTManager(app)
    manager.token_in_blocklist_loader(_revoked)
    manager.unauthorized_loader(lambda reason: _unauthorized(
        "unauthorized", "log in and send the access token: Authorization: Bearer <token>"))
    manager.invalid_token_loader(lambda reason: _unauthorized(
        "invalid_token", "the token is not valid here (malformed, wrongly signed, or the wrong kind)"))
    manager.expired_token_loader(lambda _header, _claims: _unauthorized(
        "token_expired", "the token has expired: refresh it, or log in again"))
    manager.revoked_token_loader(lambda _header, _claims: _unauthorized(
        "token_revoked", "the token's session has ended (logged out, password changed, or refresh token reused)"))
    warm_up()


def _unauthorized(code: str, message: str) -> Response:
    response, status = error_response(401, code, message)
    response.status_code = status
    error = "" if code == "unauthorized" else ', error="invalid_token"'
    response.headers["WWW-Authenticate"] = CHALLENGE + error
    return response


def _revoked(_header: dict, claims: dict) -> bool:
    """Flask-JWT-Extended asks this for every token it has verified the signature of."""
    sid, user_id = claims.get("sid"), _user_id(claims)
    if not isinstance(sid, int) or user_id is None:
        return True
    if claims.get("type") == "refresh":
        return not sessions.is_current_refresh(get_session(), sid, user_id, claims["jti"])
    return not sessions.is_live(get_session(), sid, user_id)


def _user_id(claims: dict) -> int | None:
    subject = claims.get("sub")
    return int(subject) if isinstance(subject, str) and subject.isdigit() else None


# --- for the routes ----------------------------------------------------------------------

def customer_required(view):
    """The route needs a live access token (401 otherwise)."""
    return jwt_required()(view)


def refresh_token_required(view):
    """The route needs the session's current refresh token (token refresh)."""
    return jwt_required(refresh=True)(view)


def any_token_required(view):
    """Either token of a live session will do (log-out)."""
    return jwt_required(verify_type=False)(view)


def current_claims() -> dict:
    return get_jwt()


def current_customer_id() -> int:
    """The authenticated customer's user id (inside a customer_required route)."""
    return int(get_jwt_identity())


def current_session_id() -> int:
    return get_jwt()["sid"]


def issue_tokens(user_id: int) -> dict:
    """A new session for `user_id` and its first token pair, as the log-in answers it."""
    refresh_jti = sessions.new_token_id()
    sid = sessions.open_session(get_session(), user_id, refresh_jti)
    return token_pair(user_id, sid, refresh_jti)


def token_pair(user_id: int, sid: int, refresh_jti: str) -> dict:
    identity = str(user_id)
    return {
        "access_token": create_access_token(identity, additional_claims={"sid": sid}),
        "refresh_token": create_refresh_token(identity, additional_claims={"sid": sid, "jti": refresh_jti}),
        "token_type": "Bearer",
        "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
    }


def no_store(view):
    """Responses carrying tokens must not be kept by any cache."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        response = current_app.make_response(view(*args, **kwargs))
        response.headers["Cache-Control"] = "no-store"
        return response
    return wrapper
