"""Ordered keys stored as text in the engine's tables.

Run bounds, cursors and batch ranges are kept as strings so that one schema serves
integer, string and UUID keys; the codec turns them back into values to bind.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

KEY_TYPES = ("int", "str", "uuid")


def encode_key(value: Any) -> str | None:
    return None if value is None else str(value)


def decode_key(key_type: str, text: str | None) -> Any:
    if text is None:
        return None
    if key_type == "int":
        return int(text)
    if key_type == "uuid":
        return uuid.UUID(text)
    if key_type == "str":
        return text
    raise ValueError(f"unknown key type {key_type!r} (expected one of {', '.join(KEY_TYPES)})")


@dataclass(frozen=True)
class KeyRange:
    """One batch's keys: `after < key <= end`, or `start <= key <= end` for the first
    batch of a run (after is None)."""

    after: Any
    end: Any
    start: Any = None

    def clause(self, column: sa.ColumnElement) -> sa.ColumnElement[bool]:
        upper = column <= self.end
        if self.after is not None:
            return sa.and_(column > self.after, upper)
        if self.start is not None:
            return sa.and_(column >= self.start, upper)
        return upper

    def describe(self) -> str:
        lower = f"({self.after}" if self.after is not None else f"[{self.start}"
        return f"{lower}, {self.end}]"
