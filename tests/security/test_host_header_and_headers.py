"""Findings: the Host header was reflected (`GET /api//products` with `Host:
evil.example` redirected to `http://evil.example/api/products`, in HTML), there was
no trusted-hosts setting, and JSON responses carried no X-Content-Type-Options.

backend.web.hardening: TRUSTED_HOSTS, no routing redirect, security headers on every
response (the status page keeps its own CSP)."""
from __future__ import annotations

import pytest

from backend.web.backfills.page import CONTENT_SECURITY_POLICY
from tests.test_api_products import make_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from backend.migrations.alembic_api import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('hosts') / 'shop.db'}"
    upgrade(url, "head")
    app = make_app(url, TRUSTED_HOSTS="shop.example.com,.example.org", LOGIN_RATE_LIMIT="1 per minute")
    yield app
    app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("path", ["/api//products", "//api/products", "/api/products/", "/api/users//1",
                                  "/admin/backfills/", "/health/"])
def test_no_redirect_is_built_from_the_host(app, path):
    response = app.test_client().get(path, headers={"Host": "shop.example.com"})
    assert response.status_code not in (301, 302, 303, 307, 308), path
    assert "Location" not in response.headers
    assert response.is_json or path == "/admin/backfills/"


def test_an_untrusted_host_is_a_json_400(app):
    response = app.test_client().get("/api//products", headers={"Host": "evil.example"})
    assert response.status_code == 400 and response.is_json
    assert "evil.example" not in response.headers.get("Location", "")


@pytest.mark.parametrize("host", ["shop.example.com", "shop.example.com:8000", "a.example.org", "example.org"])
def test_trusted_hosts_are_served(app, host):
    assert app.test_client().get("/api/products", headers={"Host": host}).status_code == 200


def test_without_trusted_hosts_any_host_is_served_but_never_echoed(tmp_path):
    from backend.migrations.alembic_api import upgrade

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade(url, "head")
    open_app = make_app(url)
    try:
        response = open_app.test_client().get("/api//products", headers={"Host": "evil.example"})
    finally:
        open_app.extensions["db_engine"].dispose()
    assert response.status_code == 404 and response.is_json
    assert "evil.example" not in response.get_data(as_text=True) + str(response.headers)


def responses(app):
    """One response of each kind: success, each error status, the page, a 429."""
    client = app.test_client()
    host = {"Host": "shop.example.com"}
    yield "200", client.get("/api/products", headers=host)
    yield "201", client.post("/api/users", headers=host, json={"email": "h@example.com", "password": "correct horse"})
    yield "400", client.get("/api/products?limit=0", headers=host)
    yield "400 host", client.get("/api/products", headers={"Host": "evil.example"})
    yield "401", client.get("/api/users/me", headers=host)
    yield "404", client.get("/api/nothing", headers=host)
    yield "405", client.delete("/api/products", headers=host)
    yield "415", client.post("/api/users", headers=host, data="x", content_type="text/plain")
    client.post("/api/auth/login", headers=host, json={"email": "h@example.com", "password": "wrong!!!"})
    yield "429", client.post("/api/auth/login", headers=host, json={"email": "h@example.com", "password": "wrong!!!"})
    yield "503", client.get("/api/backfills", headers=host)
    yield "page", client.get("/admin/backfills", headers=host)


def test_every_response_carries_the_security_headers(app):
    seen = set()
    for kind, response in responses(app):
        seen.add(kind)
        assert response.headers["X-Content-Type-Options"] == "nosniff", kind
        assert response.headers["Referrer-Policy"] == "no-referrer", kind
        assert response.headers["X-Frame-Options"] == "DENY", kind
        csp = response.headers["Content-Security-Policy"]
        if kind == "page":
            assert csp == CONTENT_SECURITY_POLICY  # the status page keeps its own
        else:
            assert csp.startswith("default-src 'none'") and "frame-ancestors 'none'" in csp, kind
            assert response.is_json, kind
    assert {"200", "429", "page"} <= seen


def test_authenticated_responses_are_not_stored_by_caches(app):
    client = app.test_client()
    host = {"Host": "shop.example.com"}
    client.post("/api/users", headers=host, json={"email": "c@example.com", "password": "correct horse"})
    # the module's log-in limit is spent by now; the header rule does not depend on the answer
    response = client.get("/api/users/me", headers={**host, "Authorization": "Bearer x"})
    assert response.headers["Cache-Control"] == "no-store"
