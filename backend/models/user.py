from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.models.base import Base, BigIntPK, TimestampMixin

if TYPE_CHECKING:
    from backend.models.order import Order
    from backend.models.product import Product


class User(TimestampMixin, Base):
    __tablename__ = "users"
    # One account per address in any spelling that normalizes alike (backend.text),
    # enforced by the database since revision 0009: sign-up races end in one account.
    __table_args__ = (sa.Index("uq_users_email_normalized", "email_normalized", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True, nullable=False)
    preferred_locale: Mapped[str] = mapped_column(sa.String(16), nullable=False, server_default="en")
    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # Since revision 0005, filled for older users by the users_email_normalized backfill;
    # NOT NULL and unique since 0009.
    email_normalized: Mapped[str] = mapped_column(sa.String(320), nullable=False)

    # passive_deletes: the database's ON DELETE CASCADE does the work, the ORM
    # only forgets the children instead of loading and deleting them one by one.
    products: Mapped[list["Product"]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )
    orders: Mapped[list["Order"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
