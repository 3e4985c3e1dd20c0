"""Customers (and product owners): creation and look-up."""
from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from backend.config import Config
from backend.models import User
from backend.shop.errors import Conflict, NotFound
from backend.shop.transaction import unit_of_work
from backend.shop.validation import Fields, clean_text, is_valid_id
from backend.text import normalize_email

EMAIL_MAX_LENGTH = 320
# Deliberately loose: one @, no spaces, a dot in the domain. Only a mail proves more.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 1024  # bounded: hashing is deliberately slow


def create_user(session: Session, payload: Any, config: Config) -> User:
    """Create a user from `{email, password, preferred_locale?}`.

    400 on invalid fields, 409 `email_taken` if the email is registered in any
    spelling that normalizes alike (`Ann@X.org` = `ann@x.org`). The email is stored
    as given (stripped), its key in `email_normalized` (see backend.text). Only the
    exact email is a unique constraint, so only it is race-free.
    """
    fields = Fields(payload)
    email = fields.text("email", max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN,
                        hint="must be an email address")
    password = _password(fields)
    locale = fields.choice("preferred_locale", config.supported_locales, required=False,
                           default=config.default_locale)
    normalized = normalize_email(email) if email else None
    if normalized is not None and len(normalized) > EMAIL_MAX_LENGTH:  # NFKC and IDNA can lengthen it
        fields.error("email", f"must be at most {EMAIL_MAX_LENGTH} characters once normalized")
    fields.raise_if_invalid()

    taken = Conflict(f"a user with email {email!r} already exists", code="email_taken")
    user = User(email=email, email_normalized=normalized, preferred_locale=locale,
                password_hash=generate_password_hash(password))
    try:
        with unit_of_work(session):
            if session.scalar(sa.select(User.id).where(_same_address(email, normalized)).limit(1)):
                raise taken
            session.add(user)
    except IntegrityError:  # the exact-email unique constraint settles races
        raise taken from None
    return user


def _same_address(email: str, normalized: str) -> sa.ColumnElement[bool]:
    """Users whose address normalizes like `email`. Users created before revision 0005
    have no `email_normalized` until the users_email_normalized backfill reaches them:
    for those, an address differing only in case counts too (the rest of the
    normalization, NFKC and IDNA, is Python's and cannot be asked of the database)."""
    return sa.or_(
        User.email_normalized == normalized,
        sa.and_(User.email_normalized.is_(None), sa.func.lower(User.email) == email.lower()),
    )


def _password(fields: Fields) -> str | None:
    """Taken verbatim, not stripped: spaces may be part of a password."""
    value = fields.raw("password")
    if value is None:
        return None
    if not isinstance(value, str) or clean_text(value) is None:
        fields.error("password", "must be a string of valid text")
    elif not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH:
        fields.error("password", f"must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters")
    else:
        return value
    return None


def get_user(session: Session, user_id: int) -> User:
    """The user with this id, else 404 `user_not_found`."""
    user = session.get(User, user_id) if is_valid_id(user_id) else None
    if user is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    return user
