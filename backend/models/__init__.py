"""The shop's ORM models. Import from here so that every table is registered on
`Base.metadata` (which Alembic's autogenerate compares against)."""
from backend.models.base import Base, BigIntPK, NAMING_CONVENTION
from backend.models.customer_session import CustomerSession
from backend.models.order import ORDER_STATUSES, Order, OrderItem
from backend.models.product import Product, ProductTranslation
from backend.models.user import User

__all__ = [
    "Base", "BigIntPK", "CustomerSession", "NAMING_CONVENTION", "ORDER_STATUSES",
    "Order", "OrderItem", "Product", "ProductTranslation", "User",
]
