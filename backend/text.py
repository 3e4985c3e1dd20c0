"""Text helpers shared by the app and the backfills: URL slugs and email keys.

Pure functions with no database access, so that a backfill and the app that writes
new rows compute exactly the same value.
"""
from __future__ import annotations

import re
import unicodedata

from unidecode import unidecode

SLUG_MAX_LENGTH = 120
# Scripts that a Latin transliteration would garble (kanji read as Chinese pinyin,
# for instance): their slugs keep the original characters, as IRIs allow.
_NATIVE_SCRIPT_LOCALES = {"ja", "zh", "ko", "ar", "he", "th"}
_SEPARATORS = re.compile(r"[\s_\-\u30fb\u3000/.,:;]+")


def slugify(name: str, locale: str = "en") -> str:
    """A URL slug for `name` in `locale`: lowercase, hyphen separated, never empty.

    Latin-script locales are transliterated (`Größe` -> `grosse`); native-script
    locales keep their letters (`緑茶 ティー` -> `緑茶-ティー`).
    """
    text = unicodedata.normalize("NFKC", name).strip()
    language = locale.split("-", 1)[0].lower()
    if language == "de":
        text = text.replace("ß", "ss").replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
        text = text.replace("Ä", "Ae").replace("Ö", "Oe").replace("Ü", "Ue")
    if language in _NATIVE_SCRIPT_LOCALES:
        kept = "".join(ch if (ch.isalnum() or ch in " -_") else " " for ch in text)
    else:
        kept = re.sub(r"[^A-Za-z0-9]+", " ", unidecode(text))
    slug = _SEPARATORS.sub("-", kept.casefold()).strip("-")
    slug = slug[:SLUG_MAX_LENGTH].rstrip("-")
    return slug or "item"


def with_suffix(slug: str, number: int) -> str:
    """`slug` made distinct by a numeric suffix, still within the length limit."""
    suffix = f"-{number}"
    return slug[: SLUG_MAX_LENGTH - len(suffix)].rstrip("-") + suffix


def normalize_email(email: str) -> str:
    """The key two spellings of one address share: NFKC, casefolded, the domain in
    its ASCII (IDNA) form, so that `Jürgen@Bücher.DE` and `jürgen@xn--bcher-kva.de` match."""
    text = unicodedata.normalize("NFKC", email).strip()
    local, _, domain = text.rpartition("@")
    if not local:
        return text.casefold()
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = domain
    return f"{local.casefold()}@{ascii_domain.lower()}"


# Characters that act on a terminal or a text display instead of being shown: the C0
# and C1 controls and DEL (ESC starts sequences that retitle or rewrite a terminal),
# the line and paragraph separators, and the bidirectional marks, embeddings,
# overrides and isolates (U+202E shows the rest of a line reversed).
_BIDI_FORMATTING = set("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_control_character(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in _BIDI_FORMATTING


def has_control_characters(text: str, *, allow: str = "") -> bool:
    """Whether `text` holds a control character other than those in `allow`."""
    return any(is_control_character(char) and char not in allow for char in text)


def escape_controls(text: str) -> str:
    """`text` safe to print on a terminal: each control character as a visible
    Python-style escape (`\\x1b`, `\\u202e`), everything else unchanged. For stored
    text written before control characters were refused, and for engine messages."""
    if not has_control_characters(text):
        return text
    return "".join(char.encode("unicode_escape").decode("ascii") if is_control_character(char) else char
                   for char in text)
