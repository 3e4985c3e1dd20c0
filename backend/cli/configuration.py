"""The configuration the entry scripts run with, checked the way the app checks it."""
from __future__ import annotations

import dataclasses
import socket

from backend.backfill.service import check_configuration
from backend.config import Config, normalize_database_url
from backend.logs import configure_logging
from backend.migrations.errors import CommandFailed


def load_config(database_url: str | None = None) -> Config:
    """The app's configuration (validated even when only the URL is used, so that the
    scripts and the app fail on the same bad settings), with an optional URL override."""
    config = Config.from_env()
    check_configuration(config)
    configure_logging(config.log_format)  # LOG_FORMAT=json: one JSON object per line
    if not database_url:
        return config
    return dataclasses.replace(config, database_url=normalize_database_url(database_url))


def resolve_database_url(database_url: str | None = None) -> str:
    return load_config(database_url).database_url


def ensure_port_free(host: str, port: int) -> None:
    """Werkzeug would report a busy port on two lines, and only after we migrated."""
    try:
        family, kind, _proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Werkzeug's server does
            probe.bind(address)
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
