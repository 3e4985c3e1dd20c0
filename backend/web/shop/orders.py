"""Customer and order routes: thin wrappers over backend.shop.users and
backend.shop.orders. Users live here because orders are always a user's.
Status codes: backend.shop.errors.

Who may call what (docs/security.md): signing up is public; everything else needs
the customer's access token (backend.web.auth_tokens) and reaches only that
customer's own user and orders. Another customer's user or order is answered 404,
as if it did not exist; there is no route that lists users.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from backend.shop import orders, users
from backend.shop.errors import NotFound, ShopError
from backend.shop.validation import parse_json_body
from backend.shop.views import order_view, user_view
from backend.web.auth_tokens import current_customer_id, customer_required
from backend.web.database import get_session
from backend.web.errors import error_response

bp = Blueprint("orders", __name__, url_prefix="/api")


@bp.errorhandler(ShopError)
def _shop_error(exc: ShopError):
    return error_response(exc.status, exc.code, exc.message, exc.details)


@bp.post("/users")
def create_user():
    """Sign-up: 201 with the user (never the password); 400 invalid, 409 email_taken,
    429 past SIGNUP_RATE_LIMIT. Log in with POST /api/auth/login."""
    payload = parse_json_body(request.get_data(), request.is_json)
    user = users.create_user(get_session(), payload, current_app.config["SHOP"])
    return _created(user_view(user), url_for(".get_user", user_id=user.id))


@bp.get("/users/me")
@customer_required
def get_me():
    return jsonify(user_view(users.get_user(get_session(), current_customer_id())))


@bp.get("/users/<int:user_id>")
@customer_required
def get_user(user_id: int):
    _own(user_id)
    return jsonify(user_view(users.get_user(get_session(), user_id)))


@bp.get("/users/<int:user_id>/orders")
@customer_required
def list_user_orders(user_id: int):
    """Newest first, `?limit=&cursor=`; 404 for an unknown user or another customer."""
    _own(user_id)
    page = orders.list_user_orders(get_session(), user_id, request.args)
    return jsonify({"items": [order_view(order) for order in page.items], "next_cursor": page.next_cursor})


@bp.post("/orders")
@customer_required
def create_order():
    """201 with the order, placed for the authenticated customer; 400 invalid, 403
    forbidden (user_id of someone else), 409 insufficient_stock, 422 unknown_product
    or currency_mismatch."""
    payload = parse_json_body(request.get_data(), request.is_json)
    order = orders.create_order(get_session(), payload, current_customer_id())
    return _created(order_view(order), url_for(".get_order", order_id=order.id))


@bp.get("/orders/<int:order_id>")
@customer_required
def get_order(order_id: int):
    return jsonify(order_view(orders.get_order(get_session(), order_id, current_customer_id())))


def _own(user_id: int) -> None:
    """404 unless `user_id` is the authenticated customer: whether another id exists
    is not revealed."""
    if user_id != current_customer_id():
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")


def _created(body: dict, location: str):
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response
