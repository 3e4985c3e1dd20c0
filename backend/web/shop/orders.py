"""Customer and order routes: thin wrappers over backend.shop.users and
backend.shop.orders. Users live here because orders are always a user's.
Status codes: backend.shop.errors."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from backend.shop import orders, users
from backend.shop.errors import ShopError
from backend.shop.validation import parse_json_body
from backend.shop.views import order_view, user_view
from backend.web.database import get_session
from backend.web.errors import error_response

bp = Blueprint("orders", __name__, url_prefix="/api")


@bp.errorhandler(ShopError)
def _shop_error(exc: ShopError):
    return error_response(exc.status, exc.code, exc.message, exc.details)


@bp.post("/users")
def create_user():
    """201 with the user (never the password); 400 invalid, 409 email_taken."""
    payload = parse_json_body(request.get_data(), request.is_json)
    user = users.create_user(get_session(), payload, current_app.config["SHOP"])
    return _created(user_view(user), url_for(".get_user", user_id=user.id))


@bp.get("/users/<int:user_id>")
def get_user(user_id: int):
    return jsonify(user_view(users.get_user(get_session(), user_id)))


@bp.get("/users/<int:user_id>/orders")
def list_user_orders(user_id: int):
    """Newest first, `?limit=&cursor=`; 404 for an unknown user."""
    page = orders.list_user_orders(get_session(), user_id, request.args)
    return jsonify({"items": [order_view(order) for order in page.items], "next_cursor": page.next_cursor})


@bp.post("/orders")
def create_order():
    """201 with the order; 400 invalid, 409 insufficient_stock, 422 unknown_user,
    unknown_product or currency_mismatch."""
    payload = parse_json_body(request.get_data(), request.is_json)
    order = orders.create_order(get_session(), payload)
    return _created(order_view(order), url_for(".get_order", order_id=order.id))


@bp.get("/orders/<int:order_id>")
def get_order(order_id: int):
    return jsonify(order_view(orders.get_order(get_session(), order_id)))


def _created(body: dict, location: str):
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response
