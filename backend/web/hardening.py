"""HTTP hardening that applies to every response and request of the app.

- Security headers: `X-Content-Type-Options: nosniff` (a JSON body is never read as
  HTML or script), `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, and a
  Content-Security-Policy that lets a JSON response load and run nothing. A route
  that sets its own (the status page's CSP) keeps it. Responses to requests that
  carry credentials are `Cache-Control: no-store` unless the route says otherwise.
- Hosts: TRUSTED_HOSTS becomes Flask's TRUSTED_HOSTS (another Host is a 400), and no
  response is built from the Host header: Werkzeug's merging of `//` in paths
  (which answered `/api//products` with a redirect to `http://<Host>/api/products`)
  is off, and any other routing redirect is answered with a relative Location.
- Proxies: with TRUSTED_PROXIES=n, the client address comes from the last n entries
  of X-Forwarded-For (ProxyFix), so that rate limits count clients, not the proxy.
"""
from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from backend.auth.settings import SecuritySettings

JSON_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": JSON_CONTENT_SECURITY_POLICY,
}


def init_app(app: Flask, settings: SecuritySettings) -> None:
    if settings.trusted_hosts:
        app.config["TRUSTED_HOSTS"] = list(settings.trusted_hosts)
    app.url_map.merge_slashes = False  # Flask returns routing redirects itself, past every error handler
    app.url_map.strict_slashes = False  # `/x/` for a rule `/x` is a JSON 404, `/x` for `/x/` matches: no redirect
    app.url_map.redirect_defaults = False
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if "Authorization" in request.headers:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
