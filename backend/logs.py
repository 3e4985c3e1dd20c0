"""How the app, the scripts and the workers log: LOG_FORMAT=text (the default) or json.

`text` changes nothing: each entry point keeps its human output (the scripts' own
display, gunicorn's and Celery's log lines). `json` gives the root logger one
handler writing one JSON object per line to stderr, for a log shipper:

    {"time": "2026-12-01T19:40:02.114Z", "level": "info", "logger": "backend.backfill.events",
     "message": "batch 12 of run 3: succeeded (1000 rows)", "run_id": 3, "batch_id": 12,
     "outcome": "succeeded", "rows": 1000}

The run id, batch id, backfill and outcome are fields of their own wherever the code
that logs knows them (passed as `extra={...}`; FIELDS lists them). Entry points call
`configure_logging(config.log_format)`: create_app (web), load_config (the scripts),
create_celery_app (workers, in place of Celery's own set-up) and alembic/env.py
(after alembic.ini's, which would otherwise replace the handler).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Mapping, TextIO

LOG_FORMATS = ("text", "json")
FIELDS = ("run_id", "batch_id", "backfill", "outcome", "rows", "actor")


def log_format_from_env(env: Mapping[str, str] | None = None) -> str:
    """LOG_FORMAT, checked: a typo must not silently mean the human format."""
    env = os.environ if env is None else env
    value = (env.get("LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT={env.get('LOG_FORMAT')!r} is not one of: {', '.join(LOG_FORMATS)}")
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str, *, level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """`json`: every record of this process, as one JSON line on `stream` (stderr).
    Handlers set up before (alembic.ini's, Celery's) are replaced, so that no line is
    written twice in two formats. `text`: nothing changes."""
    if log_format != "json":
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
