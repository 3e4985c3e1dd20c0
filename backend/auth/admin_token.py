"""The ADMIN_API_TOKEN and ADMIN_READ_TOKEN settings: their `name:token` form and the
policy a token must meet.

A setting is a bare token (its holder is named "admin", or "reader" for the read-only
token) or `name:token`, where the name is 1 to 64 letters, digits, `_`, `.`, `@` or
`-`. Clients send the token part only, so that part alone must be hard to guess: at
least 32 characters (the output of `secrets.token_urlsafe(32)` is 43), printable ASCII
(HTTP headers carry latin-1). ADMIN_READ_TOKEN opens the progress routes only (a wall
display, a dashboard), so its token part must differ from ADMIN_API_TOKEN's.
"""
from __future__ import annotations

import re

DEFAULT_TOKEN_NAME = "admin"
DEFAULT_READ_TOKEN_NAME = "reader"
MIN_TOKEN_LENGTH = 32
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_NAMED_TOKEN = re.compile(r"([A-Za-z0-9_.@-]{1,64}):(.+)", re.DOTALL)


def parse_admin_token(setting: str | None, default_name: str = DEFAULT_TOKEN_NAME) -> tuple[str, str] | None:
    """(name, token) from ADMIN_API_TOKEN (or ADMIN_READ_TOKEN, whose bare token is
    named `default_name`), or None when it is not configured."""
    if not setting or not setting.strip():
        return None
    setting = setting.strip()
    named = _NAMED_TOKEN.fullmatch(setting)
    if named:
        return named.group(1), named.group(2)
    return default_name, setting


def admin_token_problem(setting: str | None, variable: str = "ADMIN_API_TOKEN") -> str | None:
    """Why the token configured in `variable` must not be used (one line), or None when it may."""
    parsed = parse_admin_token(setting)
    if parsed is None:
        return None
    if not (setting.isascii() and setting.isprintable()):
        return f"{variable} must be printable ASCII (e.g. {GENERATE_HINT})"
    _name, token = parsed
    if len(token) < MIN_TOKEN_LENGTH:
        return (f"{variable}'s token is {len(token)} characters, at least {MIN_TOKEN_LENGTH} are required "
                f"(e.g. {GENERATE_HINT})")
    return None


def read_token_problem(read_setting: str | None, admin_setting: str | None) -> str | None:
    """Why ADMIN_READ_TOKEN must not be used, or None: the same policy, and a token
    of its own (the same token would make every reader an operator)."""
    problem = admin_token_problem(read_setting, "ADMIN_READ_TOKEN")
    if problem or read_setting is None:
        return problem
    read, admin = parse_admin_token(read_setting), parse_admin_token(admin_setting)
    if read and admin and read[1] == admin[1]:
        return "ADMIN_READ_TOKEN's token must differ from ADMIN_API_TOKEN's (it may only read)"
    return None
