"""The backfill status page, /admin/backfills: server-rendered HTML and a few lines
of plain JavaScript (backend/web/static/backfills/), no build step.

The page itself holds no data and needs no token: it asks for a token once and
reads and steers the runs through the token-protected JSON API
(backend/web/backfills/api.py), polling GET /api/backfills with If-None-Match every
1.5 s, a page of runs at a time, filtered by status and name.

Where the token lives. The admin token (ADMIN_API_TOKEN) stays in sessionStorage:
this tab only, gone when it closes. A read-only token (ADMIN_READ_TOKEN) may be
remembered in localStorage, so that a wall display survives a reboot: any script of
this origin could read it there, which a strict CSP makes unlikely and which would
only reveal progress. Or a reverse proxy adds `Authorization: Bearer <read token>`
to the page's and the API's requests: a page request that arrives with a Bearer
header (a browser never adds one itself) is served in proxy mode, and the page sends
no token of its own. The page never checks a token itself (no unthrottled oracle):
the API does, with its failure limits.

With neither token configured the page says the API is disabled instead of asking.
"""
from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from backend.backfill import controls
from backend.backfill.model import RunStatus
from backend.web.backfills.auth import api_enabled

bp = Blueprint("backfills_page", __name__)

POLL_INTERVAL_MS = 1500
PAGE_SIZE = 20  # runs per page of the status page (the API allows up to 200)
# The page's buttons, one per control; the JavaScript shows those a run's `actions`
# (from the API) lists. The ones that ask to confirm (final) come last.
BUTTONS = tuple(sorted(controls.CONTROLS, key=lambda control: control.confirm is not None))

# Scripts and styles from our own origin only: no inline code, so an injected
# string can never run, and the token in sessionStorage stays out of reach.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _proxy_sends_token() -> bool:
    """Whether this request carries a Bearer token, which only a proxy adds to a page
    request. Its value is never looked at here."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


@bp.get("/admin/backfills")
def status_page() -> Response:
    response = Response(render_template("backfills/status.html", poll_interval_ms=POLL_INTERVAL_MS,
                                        controls=BUTTONS, statuses=RunStatus.ALL, page_size=PAGE_SIZE,
                                        api_enabled=api_enabled(), proxy_auth=_proxy_sends_token()))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/favicon.ico")
def favicon() -> Response:
    """No icon at the conventional path (the status page links its own SVG): 204,
    cached for a day, rather than a 404 in every browser's console and log."""
    response = Response(status=204)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
