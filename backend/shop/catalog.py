"""The product catalog: creating products with their translations, finding them,
and choosing the translation that answers a request."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from backend.config import Config
from backend.models import Product, ProductTranslation, User
from backend.shop.errors import Conflict, Forbidden, InvalidInput, NotFound, Unprocessable
from backend.shop.paging import Page, fetch_page, page_request
from backend.shop.transaction import unit_of_work
from backend.shop.validation import (
    BIGINT_MAX, INT32_MAX, Fields, is_valid_id, query_bool, query_int, query_text,
)
from backend.slugs import free_slug, lock_locales

SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")  # ISO 4217 code
NAME_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 20_000


# --- creation -------------------------------------------------------------------

SLUG_ATTEMPTS = 3  # a concurrent writer may take the slug we picked; then we pick again


@dataclass(frozen=True)
class NewProduct:
    owner_id: int
    sku: str
    price_cents: int
    currency: str
    stock: int
    translations: dict[str, tuple[str, str]]  # locale -> (name, description)


def create_product(session: Session, payload: Any, config: Config, owner_id: int) -> Product:
    """Create a product of `owner_id` (the authenticated customer) and its translations
    (each with a per-locale slug) from JSON.

    400 on invalid fields (including a missing translation in the default locale or
    an unsupported locale), 403 `forbidden` when the body's owner_id names someone
    else, 409 `sku_taken`, 422 `unknown_owner` when the owner no longer exists.
    """
    new = parse_new_product(payload, config, owner_id)
    for _attempt in range(SLUG_ATTEMPTS):
        try:
            with unit_of_work(session):
                product = _insert_product(session, new)
            return product
        except IntegrityError as exc:
            # The constraints, not a prior SELECT, settle races; then we say which one.
            cause = _constraint_cause(session, new)
            if cause is not None:
                raise cause from exc
            slug_race = exc  # only (locale, slug) is left: someone took our slug, pick again
    raise slug_race


def parse_new_product(payload: Any, config: Config, owner_id: int) -> NewProduct:
    """The product to create; `owner_id` in the body is optional and, when sent, must
    be the authenticated customer's own id."""
    fields = Fields(payload)
    claimed_owner = fields.integer("owner_id", minimum=1, maximum=BIGINT_MAX, required=False)
    new = NewProduct(
        owner_id=owner_id,
        sku=fields.text("sku", max_length=64, pattern=SKU_PATTERN,
                        hint="must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
        price_cents=fields.integer("price_cents"),
        currency=fields.text("currency", max_length=3, pattern=CURRENCY_PATTERN,
                             hint="must be 3 uppercase letters (ISO 4217)"),
        stock=fields.integer("stock", required=False, default=0),
        translations=_translations(fields, config),
    )
    fields.raise_if_invalid()
    if claimed_owner is not None and claimed_owner != owner_id:
        raise Forbidden("a product can only be created for yourself: owner_id must be your own id or left out",
                        details={"owner_id": claimed_owner})
    return new


def _translations(fields: Fields, config: Config) -> dict[str, tuple[str, str]]:
    """`{locale: {name, description?}}`, in supported locales, including the default one
    (the fallback every response relies on)."""
    raw = fields.raw("translations")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        fields.error("translations", "must be a non-empty object keyed by locale")
        return {}
    translations = {}
    for locale, entry in raw.items():
        if locale not in config.supported_locales:
            fields.error(f"translations.{locale}",
                         f"unsupported locale; use one of {', '.join(config.supported_locales)}")
            continue
        entry_fields = Fields(entry, prefix=f"translations.{locale}.", errors=fields.errors)
        translations[locale] = (
            entry_fields.text("name", max_length=NAME_MAX_LENGTH),
            entry_fields.text("description", max_length=DESCRIPTION_MAX_LENGTH, required=False, default="",
                              multiline=True),
        )
    if config.default_locale not in raw:
        fields.error(f"translations.{config.default_locale}", "a translation in the default locale is required")
    return translations


def _insert_product(session: Session, new: NewProduct) -> Product:
    connection = session.connection()  # free_slug reads the slugs taken in our transaction
    lock_locales(connection, new.translations)
    product = Product(
        owner_id=new.owner_id, sku=new.sku, price_cents=new.price_cents, currency=new.currency, stock=new.stock,
        translations=[
            ProductTranslation(locale=locale, name=name, description=description,
                               slug=free_slug(connection, locale, name))
            for locale, (name, description) in new.translations.items()
        ],
    )
    session.add(product)
    return product


def _constraint_cause(session: Session, new: NewProduct) -> Exception | None:
    """The client-facing error behind an IntegrityError, or None for a slug race."""
    if session.scalar(sa.select(Product.id).where(Product.sku == new.sku)) is not None:
        return Conflict(f"sku {new.sku!r} is already in use", code="sku_taken", details={"sku": new.sku})
    if session.get(User, new.owner_id) is None:
        return Unprocessable(f"owner {new.owner_id} does not exist", code="unknown_owner",
                             details={"owner_id": new.owner_id})
    return None


# --- queries --------------------------------------------------------------------

@dataclass(frozen=True)
class ProductFilters:
    owner_id: int | None = None
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    in_stock: bool | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        conditions = []
        if self.owner_id is not None:
            conditions.append(Product.owner_id == self.owner_id)
        if self.min_price is not None:
            conditions.append(Product.price_cents >= self.min_price)
        if self.max_price is not None:
            conditions.append(Product.price_cents <= self.max_price)
        if self.currency is not None:
            conditions.append(Product.currency == self.currency)
        if self.in_stock is not None:
            conditions.append(Product.stock > 0 if self.in_stock else Product.stock == 0)
        return conditions


def parse_filters(args: Mapping[str, str]) -> ProductFilters:
    """`owner_id`, `min_price`/`max_price` (cents, inclusive), `currency`, `in_stock`."""
    filters = ProductFilters(
        owner_id=query_int(args, "owner_id", minimum=1),
        min_price=query_int(args, "min_price", maximum=INT32_MAX),
        max_price=query_int(args, "max_price", maximum=INT32_MAX),
        currency=query_text(args, "currency", CURRENCY_PATTERN, "must be 3 uppercase letters"),
        in_stock=query_bool(args, "in_stock"),
    )
    if filters.min_price is not None and filters.max_price is not None and filters.min_price > filters.max_price:
        raise InvalidInput("min_price must not exceed max_price", details={"parameter": "min_price"})
    return filters


def list_products(session: Session, args: Mapping[str, str]) -> Page[Product]:
    """One page of products matching the query's filters, in id order."""
    filters, page = parse_filters(args), page_request(args)
    statement = sa.select(Product).options(selectinload(Product.translations)).where(*filters.conditions())
    return fetch_page(session, statement, Product.id, page)


def get_product(session: Session, product_id: int) -> Product:
    """The product with its translations, else 404 `product_not_found`."""
    product = None
    if is_valid_id(product_id):
        product = session.get(Product, product_id, options=[selectinload(Product.translations)])
    if product is None:
        raise NotFound(f"product {product_id} does not exist", code="product_not_found")
    return product


# --- localization ---------------------------------------------------------------

def pick_translation(translations: Iterable[ProductTranslation], requested: str,
                     default: str) -> ProductTranslation | None:
    """The translation in `requested`, else in `default`, else (rows written outside
    the API may lack the default) the first by locale, else None."""
    by_locale = {translation.locale: translation for translation in translations}
    for locale in (requested, default):
        if locale in by_locale:
            return by_locale[locale]
    return by_locale[min(by_locale)] if by_locale else None
