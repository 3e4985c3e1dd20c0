"""Turning client input (JSON bodies, query strings) into plain, checked values.

Everything is checked here so that bad input never reaches the database, where it
would surface as a 500: an integer too large for its column, a bool posing as an
int, a NUL byte or a lone surrogate that PostgreSQL refuses.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

from backend.shop.errors import InvalidInput, UnsupportedMediaType
from backend.text import has_control_characters

INT32_MAX = 2**31 - 1  # price_cents, stock and quantity are INTEGER columns
BIGINT_MAX = 2**63 - 1  # ids are BIGINT on PostgreSQL
_DIGITS = re.compile(r"[0-9]{1,19}")  # int() would also accept "+1", " 1", "١"
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no"}
_MISSING = object()


def parse_json_body(raw: bytes, declared_json: bool) -> Any:
    """The decoded body; 415 unless declared as JSON (a form post cannot forge it)."""
    if not declared_json:
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested input
        raise InvalidInput(f"the body is not valid JSON ({exc.__class__.__name__})", code="invalid_json") from None


def is_valid_id(value: int) -> bool:
    """Whether `value` fits an id column (URL ids are not bounded by Flask)."""
    return 0 < value <= BIGINT_MAX


def storable_text(value: str) -> str | None:
    """`value` if the database can store it, else None (NUL bytes, lone surrogates).
    For secrets that are never displayed (passwords); other text goes through clean_text."""
    if "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def clean_text(value: str, *, multiline: bool = False) -> str | None:
    """`value` if it is storable text free of control characters, else None.

    Control characters (ESC, BEL, backspace... and the bidirectional overrides that
    reorder what a reader sees, U+202E) would reach the operator's terminal or a
    customer's screen from stored emails, names and reasons (docs/security.md).
    `multiline` text (a description) may keep tabs and line breaks."""
    if storable_text(value) is None:
        return None
    if has_control_characters(value, allow="\t\n\r" if multiline else ""):
        return None
    return value


class Fields:
    """Reads typed fields from one JSON object and collects every error before raising,
    so that the client can fix all of them in one go."""

    def __init__(self, payload: Any, *, prefix: str = "", errors: dict[str, str] | None = None):
        self.errors: dict[str, str] = {} if errors is None else errors
        self.prefix = prefix
        self.valid_object = isinstance(payload, dict)
        self.payload: dict = payload if self.valid_object else {}
        if not self.valid_object:
            self.errors[prefix.rstrip(".") or "body"] = "must be a JSON object"

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(self.prefix + name, message)

    def _get(self, name: str, required: bool) -> Any:
        value = self.payload.get(name)
        if value is None:
            if required and self.valid_object:
                self.error(name, "is required")
            return _MISSING
        return value

    def raw(self, name: str, *, required: bool = True) -> Any:
        """The value as sent (None when missing), for nested structures."""
        value = self._get(name, required)
        return None if value is _MISSING else value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = INT32_MAX,
                required: bool = True, default: int | None = None) -> int | None:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, "must be an integer")
        elif not minimum <= value <= maximum:
            self.error(name, f"must be between {minimum} and {maximum}")
        else:
            return value
        return None

    def text(self, name: str, *, max_length: int, required: bool = True, default: str | None = None,
             pattern: re.Pattern | None = None, hint: str = "", multiline: bool = False) -> str | None:
        """A stripped string; empty counts as missing; no control characters (line
        breaks and tabs only in `multiline` text)."""
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or storable_text(value) is None:
            self.error(name, "must be a string of valid text")
            return None
        if clean_text(value, multiline=multiline) is None:
            self.error(name, "must not contain control characters")
            return None
        value = value.strip()
        if not value:
            if required:
                self.error(name, "must not be empty")
            return default
        if len(value) > max_length:
            self.error(name, f"must be at most {max_length} characters")
        elif pattern is not None and not pattern.fullmatch(value):
            self.error(name, hint or "has an invalid format")
        else:
            return value
        return None

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = True,
               default: str | None = None) -> str | None:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}")
            return None
        return value

    def raise_if_invalid(self, message: str = "invalid request body") -> None:
        if self.errors:
            raise InvalidInput(message, details={"fields": self.errors})


def query_int(args: Mapping[str, str], name: str, *, minimum: int = 0, maximum: int = BIGINT_MAX,
              default: int | None = None) -> int | None:
    """An integer query parameter, or `default` when absent."""
    raw = args.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise InvalidInput(f"query parameter {name!r} must be an integer between {minimum} and {maximum}",
                           details={"parameter": name})
    return int(raw)


def query_bool(args: Mapping[str, str], name: str) -> bool | None:
    raw = args.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInput(f"query parameter {name!r} must be true or false", details={"parameter": name})


def query_text(args: Mapping[str, str], name: str, pattern: re.Pattern, hint: str) -> str | None:
    raw = args.get(name)
    if raw is None:
        return None
    if not pattern.fullmatch(raw):
        raise InvalidInput(f"query parameter {name!r} {hint}", details={"parameter": name})
    return raw
