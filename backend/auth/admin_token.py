"""The ADMIN_API_TOKEN setting: its `name:token` form and the policy a token must meet.

The setting is a bare token (its holder is named "admin") or `name:token`, where the
name is 1 to 64 letters, digits, `_`, `.`, `@` or `-`. Clients send the token part
only, so that part alone must be hard to guess: at least 32 characters (the output
of `secrets.token_urlsafe(32)` is 43), printable ASCII (HTTP headers carry latin-1).
"""
from __future__ import annotations

import re

DEFAULT_TOKEN_NAME = "admin"
MIN_TOKEN_LENGTH = 32
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_NAMED_TOKEN = re.compile(r"([A-Za-z0-9_.@-]{1,64}):(.+)", re.DOTALL)


def parse_admin_token(setting: str | None) -> tuple[str, str] | None:
    """(name, token) from ADMIN_API_TOKEN, or None when it is not configured."""
    if not setting or not setting.strip():
        return None
    setting = setting.strip()
    named = _NAMED_TOKEN.fullmatch(setting)
    if named:
        return named.group(1), named.group(2)
    return DEFAULT_TOKEN_NAME, setting


def admin_token_problem(setting: str | None) -> str | None:
    """Why the configured token must not be used (one line), or None when it may."""
    parsed = parse_admin_token(setting)
    if parsed is None:
        return None
    if not (setting.isascii() and setting.isprintable()):
        return f"ADMIN_API_TOKEN must be printable ASCII (e.g. {GENERATE_HINT})"
    _name, token = parsed
    if len(token) < MIN_TOKEN_LENGTH:
        return (f"ADMIN_API_TOKEN's token is {len(token)} characters, at least {MIN_TOKEN_LENGTH} are required "
                f"(e.g. {GENERATE_HINT})")
    return None
