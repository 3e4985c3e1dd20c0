from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, BigIntPK


class CustomerSession(Base):
    """One log-in of a customer: what lets the server revoke tokens it signed.

    Every access and refresh token names its session (claim `sid`); a token whose
    session is revoked or expired is refused. The session remembers the id (`jti`) of
    the one refresh token currently valid: each refresh replaces it, so a refresh
    token that was already used is recognised (and revokes the session). Since
    revision 0008 (customer_sessions).
    """
    __tablename__ = "customer_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigIntPK, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    refresh_jti: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
