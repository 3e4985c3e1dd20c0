"""Customers (and product owners): sign-up, log-in check, password change, look-up."""
from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.auth import sessions
from backend.auth.passwords import hash_password, verify_password
from backend.config import Config
from backend.models import User
from backend.shop.emails import address_problem
from backend.shop.errors import Conflict, Forbidden, NotFound, Unauthorized
from backend.shop.transaction import unit_of_work
from backend.shop.validation import Fields, is_valid_id, storable_text
from backend.text import normalize_email

EMAIL_MAX_LENGTH = 320
# Deliberately loose: one @, no spaces, a dot in the domain. Only a mail proves more.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 1024  # bounded: hashing is deliberately slow


def create_user(session: Session, payload: Any, config: Config) -> User:
    """Create a user from `{email, password, preferred_locale?}`.

    400 on invalid fields (including the trailing-dot and look-alike rules of
    backend.shop.emails), 409 `email_taken` if the email is registered in any
    spelling that normalizes alike (`Ann@X.org` = `ann@x.org`). The email is stored
    as given (stripped), its key in `email_normalized` (see backend.text), which is
    unique since revision 0009: the database settles races, the check before the
    insert only answers early (and covers users the backfill has not reached yet,
    before 0009).
    """
    fields = Fields(payload)
    email = _email(fields)
    password = _password(fields)
    locale = fields.choice("preferred_locale", config.supported_locales, required=False,
                           default=config.default_locale)
    normalized = normalize_email(email) if email else None
    if normalized is not None and len(normalized) > EMAIL_MAX_LENGTH:  # NFKC and IDNA can lengthen it
        fields.error("email", f"must be at most {EMAIL_MAX_LENGTH} characters once normalized")
    fields.raise_if_invalid()

    taken = Conflict(f"a user with email {email!r} already exists", code="email_taken")
    user = User(email=email, email_normalized=normalized, preferred_locale=locale,
                password_hash=hash_password(password))
    try:
        with unit_of_work(session):
            if session.scalar(sa.select(User.id).where(_same_address(email, normalized)).limit(1)):
                raise taken
            session.add(user)
    except IntegrityError:  # the unique email and email_normalized indexes settle races
        raise taken from None
    return user


def _email(fields: Fields) -> str | None:
    email = fields.text("email", max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN,
                        hint="must be an email address")
    problem = address_problem(email) if email else None
    if problem:
        fields.error("email", problem)
        return None
    return email


def _same_address(email: str, normalized: str) -> sa.ColumnElement[bool]:
    """Users whose address normalizes like `email`. Users created before revision 0005
    have no `email_normalized` until the users_email_normalized backfill reaches them:
    for those, an address differing only in case counts too (the rest of the
    normalization, NFKC and IDNA, is Python's and cannot be asked of the database)."""
    return sa.or_(
        User.email_normalized == normalized,
        sa.and_(User.email_normalized.is_(None), sa.func.lower(User.email) == email.lower()),
    )


def _password(fields: Fields, name: str = "password") -> str | None:
    """Taken verbatim, not stripped: spaces may be part of a password (it is never
    displayed, so any storable character is allowed)."""
    value = fields.raw(name)
    if value is None:
        return None
    if not isinstance(value, str) or storable_text(value) is None:
        fields.error(name, "must be a string of valid text")
    elif not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH:
        fields.error(name, f"must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters")
    else:
        return value
    return None


def get_user(session: Session, user_id: int) -> User:
    """The user with this id, else 404 `user_not_found`."""
    user = session.get(User, user_id) if is_valid_id(user_id) else None
    if user is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    return user


# --- log-in and password change ----------------------------------------------------

INVALID_CREDENTIALS = "the email address or the password is wrong"


def authenticate(session: Session, payload: Any) -> User:
    """The user whose `{email, password}` these are, else 401 `invalid_credentials`.

    One answer, in about one scrypt run, for an unknown address and a wrong password
    alike (backend.auth.passwords): the response tells no one which addresses have
    accounts. 400 only for a body that is not an object of two strings."""
    fields = Fields(payload)
    email = fields.text("email", max_length=EMAIL_MAX_LENGTH)
    password = fields.raw("password")
    if password is not None and (not isinstance(password, str) or len(password) > PASSWORD_MAX_LENGTH):
        fields.error("password", f"must be a string of at most {PASSWORD_MAX_LENGTH} characters")
    fields.raise_if_invalid()
    normalized = normalize_email(email)
    user = session.scalar(sa.select(User).where(_same_address(email, normalized)).order_by(User.id).limit(1))
    session.rollback()  # end the read: the log-in's writes (a new session) start their own transaction
    if not verify_password(user.password_hash if user is not None else None, password):
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    return user


def change_password(session: Session, user_id: int, payload: Any) -> User:
    """Set a new password from `{current_password, new_password}` and end every session
    of the user (tokens stolen before the change stop working). 400 invalid fields,
    403 `wrong_password` when the current password does not match."""
    fields = Fields(payload)
    current = fields.raw("current_password")
    if current is not None and not isinstance(current, str):
        fields.error("current_password", "must be a string")
    new_password = _password(fields, "new_password")
    fields.raise_if_invalid()
    user = get_user(session, user_id)
    old_hash = user.password_hash
    session.rollback()  # no transaction held during the slow hashing below
    if not verify_password(old_hash, current):
        raise Forbidden("the current password is wrong", code="wrong_password")
    new_hash = hash_password(new_password)
    with unit_of_work(session):
        changed = session.execute(  # unless a concurrent change came first
            sa.update(User).where(User.id == user_id, User.password_hash == old_hash)
            .values(password_hash=new_hash).execution_options(synchronize_session=False))
        if changed.rowcount != 1:
            raise Conflict("the password was changed meanwhile; log in again", code="password_changed")
        sessions.revoke_all(session, user_id)
    return user
