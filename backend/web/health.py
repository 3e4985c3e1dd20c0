from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from backend.web.database import get_engine
from backend.web.errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Liveness and database reachability, for load balancers and compose health checks."""
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database is "unhealthy"
        return error_response(503, "database_unavailable", f"database unreachable: {exc.__class__.__name__}")
    return jsonify({"status": "ok", "database": "ok"})
