from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.models.base import Base, BigIntPK, TimestampMixin

if TYPE_CHECKING:
    from backend.models.product import Product
    from backend.models.user import User

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")


class Order(TimestampMixin, Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigIntPK, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, server_default="pending", index=True)
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False, server_default="EUR")
    # Stored since revision 0003 (filled by the orders_total_cents backfill for older
    # orders, NOT NULL since 0006); the app computes it from the items on creation.
    total_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    user: Mapped["User"] = relationship(back_populates="orders")
    items: Mapped[list["OrderItem"]] = relationship(
        back_populates="order", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def computed_total_cents(self) -> int:
        return sum(item.quantity * item.unit_price_cents for item in self.items)


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price_cents >= 0", name="unit_price_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        BigIntPK, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
    )
    product_id: Mapped[int] = mapped_column(
        BigIntPK, sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True
    )
    quantity: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # bigint since revision 0011 (a type change in three revisions, 0010-0012)
    unit_price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    order: Mapped["Order"] = relationship(back_populates="items")
    product: Mapped["Product"] = relationship(back_populates="order_items")
