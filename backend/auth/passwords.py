"""Customers' passwords: the scrypt hashes werkzeug writes (`scrypt:32768:8:1$...`),
checked in the same time whether or not the account exists."""
from __future__ import annotations

import functools
import secrets

from werkzeug.security import check_password_hash, generate_password_hash


def hash_password(password: str) -> str:
    """werkzeug's default, scrypt with a random salt: the format every stored hash has."""
    return generate_password_hash(password)


@functools.cache
def _stand_in_hash() -> str:
    """A hash of a random password, made the way real ones are, so that checking a
    password for an unknown address costs one scrypt run like a known one does."""
    return hash_password(secrets.token_urlsafe(32))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches `stored_hash`; with no hash (no such account) the
    stand-in is checked anyway and the answer is False: the caller's response time
    does not tell which addresses have accounts."""
    if stored_hash is None:
        check_password_hash(_stand_in_hash(), password)
        return False
    return check_password_hash(stored_hash, password)


def warm_up() -> None:
    """Make the stand-in hash now (at app start), not during the first log-in."""
    _stand_in_hash()
