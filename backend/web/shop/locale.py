"""Which locale answers a request: `?lang=`, else `Accept-Language`, else the default.

Matching follows RFC 4647 lookup: a tag matches a supported locale exactly or after
dropping subtags from the right (`de-CH` -> `de`). Accept-Language ranges are tried
by descending q-value; werkzeug's `best_match` is not used because it prefers any
exact match over a better-weighted partial one (`de-CH, en;q=0.9` would give `en`).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from flask import Response, current_app, request

from backend.web.errors import ApiError

_TAG = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")


def lookup(tag: str, supported: Sequence[str]) -> str | None:
    """The supported locale (as spelled in `supported`) that `tag` falls back to, or None."""
    tag = tag.strip()
    if not _TAG.fullmatch(tag):
        return None
    by_key = {locale.lower().replace("_", "-"): locale for locale in supported}
    subtags = tag.lower().replace("_", "-").split("-")
    for end in range(len(subtags), 0, -1):
        match = by_key.get("-".join(subtags[:end]))
        if match is not None:
            return match
    return None


def best_accepted(accepted: Iterable[tuple[str, float]], supported: Sequence[str],
                  default: str) -> str | None:
    """The best supported locale for parsed Accept-Language ranges, or None.

    `*` stands for any locale not named explicitly (the default first), and q=0
    excludes a locale.
    """
    ranges = list(accepted)
    named = {lookup(tag, supported) for tag, _quality in ranges if tag != "*"}
    excluded = _excluded(ranges, supported)
    # sorted() is stable: ranges with equal q keep their header order.
    for tag, quality in sorted(ranges, key=lambda item: -item[1]):
        if quality <= 0:
            break
        if tag == "*":
            match = next((locale for locale in (default, *supported)
                          if locale not in named and locale not in excluded), None)
        else:
            match = lookup(tag, supported)
        if match is not None and match not in excluded:
            return match
    return None


def _excluded(ranges: Sequence[tuple[str, float]], supported: Sequence[str]) -> set[str]:
    """Supported locales named exactly with q=0: not served, not even as the fallback
    of a longer tag (`de;q=0, de-CH` does not serve `de`; `de-AT;q=0` excludes no `de`)."""
    excluded = set()
    for tag, quality in ranges:
        match = lookup(tag, supported) if tag != "*" and quality <= 0 else None
        if match is not None and _key(tag) == _key(match):
            excluded.add(match)
    return excluded


def _key(tag: str) -> str:
    return tag.strip().lower().replace("_", "-")


def request_locale() -> str:
    """The locale this request asks for; an unsupported `?lang=` is a 400."""
    config = current_app.config["SHOP"]
    lang = request.args.get("lang")
    if lang is not None:
        match = lookup(lang, config.supported_locales)
        if match is None:
            raise ApiError(400, "unsupported_locale",
                           f"lang={lang!r} is not supported; use one of {', '.join(config.supported_locales)}",
                           {"supported_locales": list(config.supported_locales)})
        return match
    accepted = best_accepted(request.accept_languages, config.supported_locales, config.default_locale)
    return accepted or config.default_locale


def localize(response: Response, served_locales: Iterable[str | None], requested: str) -> Response:
    """Content-Language lists the locales actually served (the requested one when
    nothing was); Vary tells caches that the answer depends on Accept-Language."""
    served = [locale for locale in dict.fromkeys(served_locales) if locale]
    response.headers["Content-Language"] = ", ".join(served or [requested])
    response.vary.add("Accept-Language")
    return response
