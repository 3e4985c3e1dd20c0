"""What an email address may look like before it becomes an account.

Two rules on top of the loose shape check in backend.shop.users, both rejecting
(not rewriting) the address, so that the address stored is always the one the
customer typed and its key (backend.text.normalize_email, shared with the
users_email_normalized backfill) never changes meaning:

- Trailing dot. `ann@example.com.` is the same mailbox as `ann@example.com` in DNS
  but a different string: a domain ending in a dot, or with an empty label
  (`example..com`, `.example.com`), is refused.
- Look-alikes (Unicode TR39 ideas, with the confusables data of confusable-homoglyphs):
  the local part and each domain label must each be written in one script, or in
  one of the combinations TR39's "highly restrictive" level allows (Latin with Han
  and the Japanese kana, with Han and Bopomofo, with Han and Hangul): Latin letters
  with Cyrillic ones, as in `аnn@example.com` with a Cyrillic `а`, are refused; and a part written only with non-ASCII letters that each look like an
  ASCII letter or digit (Cyrillic `ѕсоре`, Greek `ρορ`) is refused: it would pass
  for an ASCII address. Addresses in one non-Latin script (`иван@пример.рф`, `田中@例え.jp`)
  are accepted.
"""
from __future__ import annotations

import functools
import unicodedata

from confusable_homoglyphs import categories, confusables

_NEUTRAL_SCRIPTS = {"COMMON", "INHERITED"}  # digits, punctuation, combining marks
# Scripts that are written together, so mixing them is no sign of a look-alike.
_WRITTEN_TOGETHER = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)


def address_problem(email: str) -> str | None:
    """Why `email` is refused (a message for the client), or None if it is accepted."""
    text = unicodedata.normalize("NFKC", email)
    local, _, domain = text.rpartition("@")
    labels = domain.split(".")
    if domain.endswith("."):
        return "must not end with a dot"
    if any(not label for label in labels):
        return "must not have an empty domain label (two dots in a row, or a leading dot)"
    for part in (local, *labels):
        if _mixes_scripts(part):
            return f"mixes letters of different scripts in {part!r} (look-alike characters)"
        if _passes_for_ascii(part):
            return f"{part!r} is written with characters that look like ASCII letters (look-alikes)"
    return None


def _scripts(part: str) -> set[str]:
    return {categories.alias(char) for char in part} - _NEUTRAL_SCRIPTS


def _mixes_scripts(part: str) -> bool:
    scripts = _scripts(part)
    return len(scripts) > 1 and not any(scripts <= together for together in _WRITTEN_TOGETHER)


def _passes_for_ascii(part: str) -> bool:
    letters = [char for char in part if not char.isascii() and categories.alias(char) not in _NEUTRAL_SCRIPTS]
    if not letters or len(letters) != sum(1 for char in part if char.isalpha()):
        return False  # some ASCII letter, or no letter at all: nothing to pass for
    return all(_looks_like_ascii(char) for char in letters)


@functools.lru_cache(maxsize=4096)
def _looks_like_ascii(char: str) -> bool:
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"]) or []
    return any(glyph["c"].isascii() and glyph["c"].isalnum()
               for entry in found for glyph in entry["homoglyphs"])
