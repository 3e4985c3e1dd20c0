"""The backfill status page, /admin/backfills: server-rendered HTML and a few lines
of plain JavaScript (backend/web/static/backfills/), no build step.

The page itself holds no data and needs no token: it asks for the admin token once,
keeps it in sessionStorage (this browser tab only), and reads and steers the runs
through the token-protected JSON API (backend/web/backfills/api.py), polling
GET /api/backfills with If-None-Match every 1.5 s.
"""
from __future__ import annotations

from flask import Blueprint, Response, render_template

from backend.backfill import controls

bp = Blueprint("backfills_page", __name__)

POLL_INTERVAL_MS = 1500
# The page's buttons, one per control; the JavaScript shows those a run's `actions`
# (from the API) lists. The ones that ask to confirm (final) come last.
BUTTONS = tuple(sorted(controls.CONTROLS, key=lambda control: control.confirm is not None))

# Scripts and styles from our own origin only: no inline code, so an injected
# string can never run, and the token in sessionStorage stays out of reach.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.get("/admin/backfills")
def status_page() -> Response:
    response = Response(render_template("backfills/status.html", poll_interval_ms=POLL_INTERVAL_MS,
                                        controls=BUTTONS))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
