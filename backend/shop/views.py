"""The JSON shapes of users, products and orders, as plain dicts.

Kept apart from the queries so that every route (and a future CLI export) renders
a resource the same way; password hashes are never part of any shape.
"""
from __future__ import annotations

from datetime import datetime, timezone

from backend.models import Order, OrderItem, Product, User
from backend.shop.catalog import pick_translation
from backend.shop.orders import order_total_cents


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 with an offset; SQLite hands back naive UTC datetimes."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def user_view(user: User) -> dict:
    return {
        "id": user.id,
        "email": user.email,
        "preferred_locale": user.preferred_locale,
        "created_at": utc_iso(user.created_at),
    }


def product_view(product: Product, requested_locale: str, default_locale: str) -> dict:
    """The product in `requested_locale`; `locale` says which one was served and
    `fallback` whether it differs from the requested one."""
    translation = pick_translation(product.translations, requested_locale, default_locale)
    served = translation.locale if translation is not None else None
    return {
        "id": product.id,
        "owner_id": product.owner_id,
        "sku": product.sku,
        "price_cents": product.price_cents,
        "currency": product.currency,
        "stock": product.stock,
        "name": translation.name if translation is not None else None,
        "description": translation.description if translation is not None else None,
        "slug": translation.slug if translation is not None else None,
        "locale": served,
        "requested_locale": requested_locale,
        "fallback": served != requested_locale,
        "available_locales": sorted(t.locale for t in product.translations),
        "created_at": utc_iso(product.created_at),
        "updated_at": utc_iso(product.updated_at),
    }


def order_item_view(item: OrderItem) -> dict:
    return {
        "id": item.id,
        "product_id": item.product_id,
        "quantity": item.quantity,
        "unit_price_cents": item.unit_price_cents,
        "line_total_cents": item.quantity * item.unit_price_cents,
    }


def order_view(order: Order) -> dict:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "currency": order.currency,
        "items": [order_item_view(item) for item in sorted(order.items, key=lambda item: item.id)],
        "total_cents": order_total_cents(order),
        "created_at": utc_iso(order.created_at),
    }
