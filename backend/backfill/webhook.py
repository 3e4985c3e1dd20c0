"""The HTTP side of the webhook notifications: the configured URLs, and one POST.

No engine import here: backend.config parses BACKFILL_NOTIFY_WEBHOOK_URL with it,
and the workers' notification task (worker/tasks.py) sends with it.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

SEND_TIMEOUT_SECONDS = 5.0


def parse_webhook_urls(value: str | None) -> tuple[str, ...]:
    """The comma-separated URLs of BACKFILL_NOTIFY_WEBHOOK_URL; ValueError names a bad one."""
    urls = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    for url in urls:
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
        except ValueError:  # a bad [IPv6] host or port
            valid = False
        if not valid:
            raise ValueError(f"BACKFILL_NOTIFY_WEBHOOK_URL: {url!r} is not an http:// or https:// URL with a host")
    return urls


def shown_url(url: str) -> str:
    """The URL as logged: scheme and host only (a Slack webhook's path is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."


def post(url: str, body: dict[str, Any], timeout: float = SEND_TIMEOUT_SECONDS) -> None:
    """POST the JSON body; raises on a connection error or a status other than 2xx."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # HTTPError for 4xx/5xx
        response.read()
