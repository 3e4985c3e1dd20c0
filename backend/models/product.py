from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.models.base import Base, BigIntPK, TimestampMixin

if TYPE_CHECKING:
    from backend.models.order import OrderItem
    from backend.models.user import User


class Product(TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
        sa.CheckConstraint("stock >= 0", name="stock_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        BigIntPK, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    sku: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    # bigint since revision 0011 (a type change in three revisions, 0010-0012)
    price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False, server_default="EUR")
    stock: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="0")

    owner: Mapped["User"] = relationship(back_populates="products")
    translations: Mapped[list["ProductTranslation"]] = relationship(
        back_populates="product", cascade="all, delete-orphan", passive_deletes=True
    )
    order_items: Mapped[list["OrderItem"]] = relationship(
        back_populates="product", cascade="all, delete-orphan", passive_deletes=True
    )


class ProductTranslation(Base):
    __tablename__ = "product_translations"
    __table_args__ = (sa.UniqueConstraint("product_id", "locale"), sa.UniqueConstraint("locale", "slug"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    product_id: Mapped[int] = mapped_column(
        BigIntPK, sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True
    )
    locale: Mapped[str] = mapped_column(sa.String(16), nullable=False, index=True)
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    description: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="")
    # Since revision 0004 (translation_slugs backfill), NOT NULL and unique per
    # locale since 0007. New translations get one from backend.slugs.free_slug.
    slug: Mapped[str] = mapped_column(sa.String(140), nullable=False)

    product: Mapped["Product"] = relationship(back_populates="translations")
