"""The health check and the JSON shape of errors no view raises (404, 405)."""
from __future__ import annotations

from tests.test_api_products import app, client, error_of, make_app  # noqa: F401 - fixtures


def test_health_reports_the_database(client):
    response = client.get("/health")

    assert (response.status_code, response.json) == (200, {"status": "ok", "database": "ok"})


def test_health_is_503_when_the_database_is_unreachable():
    app = make_app("postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    try:
        response = app.test_client().get("/health")
    finally:
        app.extensions["db_engine"].dispose()

    assert response.status_code == 503
    assert error_of(response)["code"] == "database_unavailable"


def test_unknown_route_is_a_json_404(client):
    response = client.get("/api/nothing-here")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_wrong_method_is_a_json_405(client):
    response = client.delete("/api/products")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
