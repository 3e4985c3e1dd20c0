"""Who may use the operations API (backend/web/backfills/api.py) and GET /metrics:
the bearer-token check both run before every request.

Every route needs `Authorization: Bearer <token>`, compared in constant time with the
configured tokens (backend.auth.admin_token has their forms and policy):

- ADMIN_API_TOKEN: everything. Controls are recorded in the run's transition log
  with the actor `api:<name>`.
- ADMIN_READ_TOKEN: the GET routes only, for a wall display or a dashboard; a
  control sent with it is 403 `read_only_token`, before anything is read or written.

With neither configured the routes answer 503 (the API is off, never open); a
missing or wrong token is 401 with `WWW-Authenticate: Bearer`, logged without the
token and limited per client (ADMIN_AUTH_FAILURE_RATE_LIMIT, then 429;
backend.web.rate_limits). A request that passes carries `g.backfills_actor` and
`g.backfills_access` ("control" or "read").
"""
from __future__ import annotations

import hmac

from flask import Response, current_app, g, request

from backend.auth.admin_token import DEFAULT_READ_TOKEN_NAME, parse_admin_token
from backend.web.errors import error_response

CONTROL, READ = "control", "read"  # what a token may do: everything, or the GET routes only


def configured_tokens() -> list[tuple[str, str, str]]:
    """(access, name, token) of each configured token: ADMIN_API_TOKEN, ADMIN_READ_TOKEN."""
    config = current_app.config["SHOP"]
    found = [(CONTROL, parse_admin_token(config.admin_api_token)),
             (READ, parse_admin_token(config.admin_read_token, DEFAULT_READ_TOKEN_NAME))]
    return [(access, *parsed) for access, parsed in found if parsed is not None]


def api_enabled() -> bool:
    return bool(configured_tokens())


def _matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode("utf-8", "surrogateescape"))


def _unauthorized(code: str, message: str, challenge: str) -> Response:
    """401. Logged with the client's address and what was wrong, never what was sent
    (a near-miss token in a log would be half a leak)."""
    current_app.logger.warning("operations API: authentication failed (%s) from %s for %s %s",
                               code, request.remote_addr, request.method, request.path)
    response, status = error_response(401, code, message)
    response.status_code = status
    response.headers["WWW-Authenticate"] = challenge
    return response


def authenticate():
    """A before_request hook: None to go on, else the error response."""
    tokens = configured_tokens()
    if not tokens:
        return error_response(503, "admin_api_disabled",
                              "the admin API is disabled: set ADMIN_API_TOKEN to enable it")
    scheme, _, presented = request.headers.get("Authorization", "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return _unauthorized("unauthorized", "send the admin token: Authorization: Bearer <token>",
                             'Bearer realm="backfills"')
    # Every configured token is compared (in constant time), whichever matches.
    matched = [(access, name) for access, name, expected in tokens if _matches(presented, expected)]
    if not matched:
        return _unauthorized("invalid_token", "the admin token is not valid",
                             'Bearer realm="backfills", error="invalid_token"')
    g.backfills_access, name = matched[0]
    g.backfills_actor = f"api:{name}"
    if g.backfills_access == READ and request.method not in ("GET", "HEAD"):
        return error_response(403, "read_only_token",
                              "this token may only read (ADMIN_READ_TOKEN): controls need ADMIN_API_TOKEN's token")
    return None
