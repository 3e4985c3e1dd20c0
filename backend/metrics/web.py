"""`GET /metrics` on the web app, behind the operations API's bearer token.

Why on the app and not on a bind address of its own: the app is what is already
deployed, behind TLS and the operators' proxy, and the run metrics are read from
the database at scrape time, so any replica answers. The metrics name backfills,
run ids and error counts: they are protected like the operations API (the same
check, backend.web.backfills.auth, so the same tokens (the read-only one too), the same 503 when
ADMIN_API_TOKEN is unset, the same 401s, and failures limited per client by the same
setting, ADMIN_AUTH_FAILURE_RATE_LIMIT). Prometheus sends the token with `authorization: {credentials_file: ...}`
(deploy/prometheus/prometheus.yml).
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response

from backend.metrics.database import DatabaseCollector
from backend.metrics.exposition import CONTENT_TYPE, exposition
from backend.web.backfills.auth import authenticate
from backend.web.database import get_engine

bp = Blueprint("metrics", __name__)
bp.before_request(authenticate)


@bp.get("/metrics")
def metrics() -> Response:
    body = exposition([DatabaseCollector(get_engine())])
    return Response(body, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Register /metrics; after rate_limits.init_app, whose limiter it shares."""
    app.register_blueprint(bp)
    limiter = app.extensions.get("shop_limiter")
    if limiter is not None:
        limiter.limit(app.config["SHOP"].security.admin_auth_failure_rate_limit, scope="admin-auth-failures",
                      deduct_when=lambda response: response.status_code == 401)(app.blueprints["metrics"])
