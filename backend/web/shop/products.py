"""Product routes: thin wrappers over backend.shop.catalog, answered in the
negotiated locale (see backend.web.shop.locale). Status codes: backend.shop.errors.

The catalogue is public (anyone may list and read products: that is what a shop
shows); creating a product needs the customer's access token and makes them its
owner (docs/security.md)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from backend.shop import catalog
from backend.shop.errors import ShopError
from backend.shop.validation import parse_json_body
from backend.shop.views import product_view
from backend.web.auth_tokens import current_customer_id, customer_required
from backend.web.database import get_session
from backend.web.errors import error_response
from backend.web.shop.locale import localize, request_locale

bp = Blueprint("products", __name__, url_prefix="/api")


@bp.errorhandler(ShopError)
def _shop_error(exc: ShopError):
    return error_response(exc.status, exc.code, exc.message, exc.details)


@bp.get("/products")
def list_products():
    """`?limit=&cursor=` plus filters `owner_id`, `min_price`, `max_price`, `currency`, `in_stock`."""
    locale = request_locale()
    page = catalog.list_products(get_session(), request.args)
    items = [_view(product, locale) for product in page.items]
    body = {"items": items, "next_cursor": page.next_cursor, "requested_locale": locale}
    return localize(jsonify(body), (item["locale"] for item in items), locale)


@bp.get("/products/<int:product_id>")
def get_product(product_id: int):
    locale = request_locale()
    view = _view(catalog.get_product(get_session(), product_id), locale)
    return localize(jsonify(view), [view["locale"]], locale)


@bp.post("/products")
@customer_required
def create_product():
    """201 with the product, owned by the authenticated customer; 400 invalid, 403
    forbidden (owner_id of someone else), 409 sku_taken."""
    locale = request_locale()  # a bad ?lang= fails before anything is written
    payload = parse_json_body(request.get_data(), request.is_json)
    product = catalog.create_product(get_session(), payload, current_app.config["SHOP"], current_customer_id())
    view = _view(product, locale)
    response = localize(jsonify(view), [view["locale"]], locale)
    response.status_code = 201
    response.headers["Location"] = url_for(".get_product", product_id=product.id)
    return response


def _view(product, locale: str) -> dict:
    return product_view(product, locale, current_app.config["SHOP"].default_locale)
