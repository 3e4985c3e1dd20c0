"""Customers' server-side sessions (table customer_sessions): one per log-in.

Signed tokens cannot be taken back by themselves; the session they name can. An
access token is honoured while its session is live (not revoked, not expired); a
refresh token only while it is the session's current one. Refreshing swaps in a
new refresh token with a conditional UPDATE, so of two requests racing with the
same token only one wins, and a refresh token presented again after its use
(stolen and replayed, or the client's own stale copy) revokes the session.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from backend.models import CustomerSession
from backend.shop.transaction import unit_of_work

SESSION_LIFETIME = timedelta(days=30)  # also the refresh token's lifetime


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_token_id() -> str:
    return uuid.uuid4().hex


def open_session(session: Session, user_id: int, refresh_jti: str) -> int:
    """Record a log-in whose first refresh token has id `refresh_jti`; its id (`sid`)."""
    with unit_of_work(session):
        record = CustomerSession(user_id=user_id, refresh_jti=refresh_jti, expires_at=_now() + SESSION_LIFETIME)
        session.add(record)
        session.flush()
        sid = record.id
    return sid


def _live(sid: int) -> sa.ColumnElement[bool]:
    return sa.and_(CustomerSession.id == sid, CustomerSession.revoked_at.is_(None),
                   CustomerSession.expires_at > _now())


def is_live(session: Session, sid: int, user_id: int) -> bool:
    """Whether session `sid` of `user_id` may still be used (one primary-key read)."""
    found = session.scalar(sa.select(CustomerSession.id).where(_live(sid), CustomerSession.user_id == user_id))
    # End this read's transaction: the request's own writes then begin theirs with the
    # write lock (BEGIN IMMEDIATE on SQLite, backend.shop.transaction), not inside a read.
    session.rollback()
    return found is not None


def is_current_refresh(session: Session, sid: int, user_id: int, refresh_jti: str) -> bool:
    """Whether `refresh_jti` is the live session's current refresh token. A live
    session presented with an older one is revoked (a replayed token)."""
    current = session.scalar(sa.select(CustomerSession.refresh_jti).where(_live(sid),
                                                                          CustomerSession.user_id == user_id))
    session.rollback()  # as in is_live
    if current is None:
        return False
    if current != refresh_jti:
        revoke(session, sid)
        return False
    return True


def rotate_refresh(session: Session, sid: int, old_jti: str, new_jti: str) -> bool:
    """Replace the session's refresh token `old_jti` by `new_jti` and extend the
    session; False when another request already did (or the session ended)."""
    with unit_of_work(session):
        swapped = session.execute(
            sa.update(CustomerSession)
            .where(_live(sid), CustomerSession.refresh_jti == old_jti)
            .values(refresh_jti=new_jti, expires_at=_now() + SESSION_LIFETIME)
            .execution_options(synchronize_session=False)
        )
    return swapped.rowcount == 1


def revoke(session: Session, sid: int) -> None:
    """End one session (log-out): its access and refresh tokens are refused from now on."""
    with unit_of_work(session):
        session.execute(sa.update(CustomerSession)
                        .where(CustomerSession.id == sid, CustomerSession.revoked_at.is_(None))
                        .values(revoked_at=_now()).execution_options(synchronize_session=False))


def revoke_all(session: Session, user_id: int) -> None:
    """End every session of a customer, in the caller's transaction (a password change)."""
    session.execute(sa.update(CustomerSession)
                    .where(CustomerSession.user_id == user_id, CustomerSession.revoked_at.is_(None))
                    .values(revoked_at=_now()).execution_options(synchronize_session=False))
