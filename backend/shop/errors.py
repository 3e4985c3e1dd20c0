"""Errors the shop's services raise for the caller to report as is.

They carry an HTTP-style `status` so that the web layer maps them in one line,
while the services themselves stay free of Flask (the CLI and the worker reuse them).

Status codes, the same for every route:
  400 invalid_request  the input alone is wrong: malformed JSON, wrong type, out of
                       range, bad format, unsupported locale, missing field
  401 unauthorized     no valid access token (backend.web.auth_tokens), or
      invalid_credentials  a log-in with a wrong address or password (one answer)
  403 forbidden        the body names another customer (an order's user_id, a
                       product's owner_id): a customer acts only for themselves
  404 *_not_found      the resource named in the URL does not exist, or is another
                       customer's (their users and orders are not revealed)
  409 conflict         the input clashes with current data: sku or email taken,
                       not enough stock
  415                  the body is not declared as JSON
  422 unknown_* / currency_mismatch
                       the input is well formed but refers to rows that do not
                       exist (owner, user, product) or cannot be combined
"""
from __future__ import annotations


class ShopError(Exception):
    status = 500
    code = "shop_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidInput(ShopError):
    status = 400
    code = "invalid_request"


class Unauthorized(ShopError):
    status = 401
    code = "unauthorized"


class Forbidden(ShopError):
    status = 403
    code = "forbidden"


class NotFound(ShopError):
    status = 404
    code = "not_found"


class Conflict(ShopError):
    status = 409
    code = "conflict"


class UnsupportedMediaType(ShopError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(ShopError):
    status = 422
    code = "unprocessable"
