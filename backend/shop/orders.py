"""Orders: placing one from a cart in a single transaction, and reading them back.

Stock is taken with a conditional UPDATE (`stock = stock - q WHERE stock >= q`) and
its rowcount, never read-then-write, so two concurrent carts cannot both take the
last unit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from backend.models import Order, OrderItem, Product, User
from backend.shop.catalog import CURRENCY_PATTERN
from backend.shop.errors import Conflict, Forbidden, NotFound, Unprocessable
from backend.shop.paging import Page, fetch_page, page_request
from backend.shop.transaction import unit_of_work
from backend.shop.users import get_user
from backend.shop.validation import BIGINT_MAX, INT32_MAX, Fields, is_valid_id

MAX_ORDER_LINES = 100  # keeps the transaction, and the rows it locks, bounded


@dataclass(frozen=True)
class OrderRequest:
    user_id: int
    currency: str | None
    quantities: dict[int, int]  # product id -> quantity, duplicate lines merged


def items_total_cents(items: list[OrderItem]) -> int:
    return sum(item.quantity * item.unit_price_cents for item in items)


def order_total_cents(order: Order) -> int:
    """The order's total: the stored column (NOT NULL since revision 0006), written
    from the items when the order is created, so listings need not sum items."""
    return order.total_cents


# --- placing an order -----------------------------------------------------------

def create_order(session: Session, payload: Any, user_id: int) -> Order:
    """Place an order of `user_id` (the authenticated customer) from
    `{user_id?, currency?, items: [{product_id, quantity}]}`.

    Lines naming the same product are merged (quantities added). All or nothing:
    400 on invalid fields, 403 `forbidden` when the body's user_id names someone
    else, 409 `insufficient_stock` naming the short product, 422 `unknown_user` /
    `unknown_product`, 422 `currency_mismatch` when the products' currencies differ
    from each other or from the order's `currency`.
    """
    request = parse_order_request(payload, user_id)
    with unit_of_work(session):
        # Stock first: SQLite then takes its write lock before any read (a deferred
        # read-then-write transaction fails with SQLITE_BUSY under concurrent writers),
        # and PostgreSQL locks the product rows before their prices are read.
        _take_stock(session, request.quantities)
        if session.get(User, request.user_id) is None:
            raise Unprocessable(f"user {request.user_id} does not exist", code="unknown_user",
                                details={"user_id": request.user_id})
        prices = _locked_prices(session, request.quantities)
        items = [
            OrderItem(product_id=product_id, quantity=quantity, unit_price_cents=prices[product_id][0])
            for product_id, quantity in request.quantities.items()
        ]
        total = items_total_cents(items)
        if total > BIGINT_MAX:  # only absurd prices times absurd stock get here
            raise Unprocessable("the order's total is too large", code="total_too_large")
        order = Order(user_id=request.user_id, currency=_order_currency(request.currency, prices),
                      status="pending", items=items, total_cents=total)
        session.add(order)
    return order


def parse_order_request(payload: Any, user_id: int) -> OrderRequest:
    """The order to place for `user_id`; `user_id` in the body is optional and, when
    sent, must be that same id (an order is never placed for someone else)."""
    fields = Fields(payload)
    claimed_user = fields.integer("user_id", minimum=1, maximum=BIGINT_MAX, required=False)
    currency = fields.text("currency", max_length=3, pattern=CURRENCY_PATTERN, required=False,
                           hint="must be 3 uppercase letters (ISO 4217)")
    quantities = _merged_lines(fields)
    fields.raise_if_invalid()
    if claimed_user is not None and claimed_user != user_id:
        raise Forbidden("an order can only be placed for yourself: user_id must be your own id or left out",
                        details={"user_id": claimed_user})
    return OrderRequest(user_id=user_id, currency=currency, quantities=quantities)


def _merged_lines(fields: Fields) -> dict[int, int]:
    raw = fields.raw("items")
    if raw is None:
        return {}
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ORDER_LINES:
        fields.error("items", f"must be a list of 1 to {MAX_ORDER_LINES} items")
        return {}
    quantities: dict[int, int] = {}
    for index, line in enumerate(raw):
        line_fields = Fields(line, prefix=f"items.{index}.", errors=fields.errors)
        product_id = line_fields.integer("product_id", minimum=1, maximum=BIGINT_MAX)
        quantity = line_fields.integer("quantity", minimum=1)
        if product_id is not None and quantity is not None:
            quantities[product_id] = quantities.get(product_id, 0) + quantity
            if quantities[product_id] > INT32_MAX:
                line_fields.error("quantity", "total quantity for this product is too large")
    return quantities


def _take_stock(session: Session, quantities: dict[int, int]) -> None:
    """Decrement each product's stock, in id order so that two overlapping carts lock
    rows in the same order and cannot deadlock."""
    for product_id, quantity in sorted(quantities.items()):
        taken = session.execute(
            sa.update(Product)
            .where(Product.id == product_id, Product.stock >= quantity)
            .values(stock=Product.stock - quantity)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            session.rollback()  # so that `available` below is the committed stock, not ours
            raise _stock_error(session, product_id, quantity)


def _stock_error(session: Session, product_id: int, quantity: int) -> Exception:
    available = session.scalar(sa.select(Product.stock).where(Product.id == product_id))
    if available is None:
        return Unprocessable(f"product {product_id} does not exist", code="unknown_product",
                             details={"product_id": product_id})
    return Conflict(
        f"product {product_id} has {available} in stock, {quantity} requested",
        code="insufficient_stock",
        details={"product_id": product_id, "requested": quantity, "available": available},
    )


def _locked_prices(session: Session, quantities: dict[int, int]) -> dict[int, tuple[int, str]]:
    """Price and currency per product, read after _take_stock so that on PostgreSQL
    the rows are locked and cannot change before we commit."""
    rows = session.execute(
        sa.select(Product.id, Product.price_cents, Product.currency).where(Product.id.in_(quantities))
    )
    return {row.id: (row.price_cents, row.currency) for row in rows}


def _order_currency(requested: str | None, prices: dict[int, tuple[int, str]]) -> str:
    """The order's currency: the one requested, or the products' common one."""
    currencies = {currency for _price, currency in prices.values()}
    if requested is None and len(currencies) == 1:
        return currencies.pop()
    if requested is not None and currencies == {requested}:
        return requested
    raise Unprocessable(
        "all items must be priced in the order's currency",
        code="currency_mismatch",
        details={"order_currency": requested,
                 "product_currencies": {str(pid): currency for pid, (_price, currency) in sorted(prices.items())}},
    )


# --- reading orders -------------------------------------------------------------

def get_order(session: Session, order_id: int, customer_id: int) -> Order:
    """The customer's order with its items, else 404 `order_not_found` (another
    customer's order is answered as missing: its existence is not revealed)."""
    order = None
    if is_valid_id(order_id):
        order = session.get(Order, order_id, options=[selectinload(Order.items)])
    if order is None or order.user_id != customer_id:
        raise NotFound(f"order {order_id} does not exist", code="order_not_found")
    return order


def list_user_orders(session: Session, user_id: int, args: Mapping[str, str]) -> Page[Order]:
    """One page of the user's orders, newest first; 404 if the user does not exist.
    The caller checks that `user_id` is the authenticated customer."""
    page = page_request(args)
    get_user(session, user_id)
    statement = sa.select(Order).options(selectinload(Order.items)).where(Order.user_id == user_id)
    return fetch_page(session, statement, Order.id, page, newest_first=True)
