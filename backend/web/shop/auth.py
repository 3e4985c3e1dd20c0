"""Customer log-in, token refresh, log-out and password change (sign-up is
POST /api/users, in backend.web.shop.orders). Tokens: backend.web.auth_tokens.

    POST /api/auth/login     {email, password} -> 200 {access_token, refresh_token, ...}
                             401 invalid_credentials (one answer for every failure);
                             429 past LOGIN_RATE_LIMIT / LOGIN_ACCOUNT_RATE_LIMIT
    POST /api/auth/refresh   Bearer <refresh token> -> 200 a new pair (the old refresh
                             token is spent; using it again ends the session)
    POST /api/auth/logout    Bearer <access or refresh token> -> 204, session ended
    POST /api/auth/password  Bearer <access token>, {current_password, new_password}
                             -> 200 a new pair; every other session is ended
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from backend.auth import sessions
from backend.shop import users
from backend.shop.errors import ShopError
from backend.shop.validation import parse_json_body
from backend.web.auth_tokens import (
    CHALLENGE, any_token_required, current_claims, current_customer_id, current_session_id, customer_required,
    issue_tokens, no_store, refresh_token_required, token_pair,
)
from backend.web.database import get_session
from backend.web.errors import error_response

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


@bp.errorhandler(ShopError)
def _shop_error(exc: ShopError):
    response, status = error_response(exc.status, exc.code, exc.message, exc.details)
    if status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    return response, status


@bp.post("/login")
@no_store
def login():
    payload = parse_json_body(request.get_data(), request.is_json)
    user = users.authenticate(get_session(), payload)
    return jsonify(issue_tokens(user.id))


@bp.post("/refresh")
@no_store
@refresh_token_required
def refresh():
    claims = current_claims()
    new_jti = sessions.new_token_id()
    if not sessions.rotate_refresh(get_session(), claims["sid"], claims["jti"], new_jti):
        response, status = error_response(401, "token_revoked", "this refresh token was already used or its "
                                                                "session ended")
        response.headers["WWW-Authenticate"] = CHALLENGE + ', error="invalid_token"'
        return response, status
    return jsonify(token_pair(current_customer_id(), claims["sid"], new_jti))


@bp.post("/logout")
@any_token_required
def logout():
    sessions.revoke(get_session(), current_session_id())
    return "", 204


@bp.post("/password")
@no_store
@customer_required
def change_password():
    payload = parse_json_body(request.get_data(), request.is_json)
    user = users.change_password(get_session(), current_customer_id(), payload)
    return jsonify(issue_tokens(user.id))
