"""LOG_FORMAT=json: the scripts and the app write one JSON object per line on stderr,
with the run id, batch id and outcome as fields (the worker's own test is in
tests/test_metrics_worker.py); the default stays human."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from backend.config import Config, ConfigError
from backend.logs import JsonFormatter, configure_logging, log_format_from_env
from tests.backfill_helpers import insert_rows, touch_service
from tests.processes import ROOT, subprocess_env

TOKEN = "logs-token-for-tests-0123456789abcdefgh"


def json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed: one that is not a JSON object fails the test."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(record, dict) for record in records)
    return records


def test_a_record_is_one_line_of_json_with_its_ids_as_fields():
    record = logging.LogRecord("backend.backfill.events", logging.WARNING, __file__, 1,
                               "batch %s failed:\n%s", (7, "two\nlines"), None)
    record.run_id, record.batch_id, record.outcome, record.backfill = 3, 7, "failed", "orders_total_cents"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "backend.backfill.events"
    assert entry["message"] == "batch 7 failed:\ntwo\nlines"
    assert (entry["run_id"], entry["batch_id"], entry["outcome"], entry["backfill"]) == (3, 7, "failed",
                                                                                          "orders_total_cents")
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("Z")


def test_json_replaces_the_root_handlers_and_text_changes_nothing():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging("text")
        assert root.handlers == saved_handlers
        stream = io.StringIO()
        configure_logging("json", stream=stream)
        assert len(root.handlers) == 1
        logging.getLogger("somewhere").info("hello", extra={"run_id": 5})
        assert json_lines(stream.getvalue())[-1]["run_id"] == 5
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.captureWarnings(False)


@pytest.mark.parametrize("value, expected", [(None, "text"), ("", "text"), ("JSON", "json"), (" text ", "text")])
def test_log_format_setting(value, expected):
    assert log_format_from_env({} if value is None else {"LOG_FORMAT": value}) == expected


def test_an_unknown_log_format_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"LOG_FORMAT='xml' is not one of: text, json"):
        Config.from_env({"LOG_FORMAT": "xml"})


def test_the_batched_script_logs_each_batch_as_json(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    service = touch_service(url)
    insert_rows(service.engine, range(1, 51))  # test_touch: 5 batches of 10
    run_id = service.schedule("test_touch")
    service.engine.dispose()
    result = subprocess.run([sys.executable, "run_migrations.py", "--batched", "--only", "test_touch"], cwd=ROOT,
                            env=subprocess_env(DATABASE_URL=url, BACKFILL_MODULES="tests.backfills_for_tests",
                                               LOG_FORMAT="json", CELERY_BROKER_URL=""),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stderr)
    batches = [r for r in records if r.get("run_id") == run_id and r.get("outcome") == "succeeded"]
    assert len(batches) == 5, result.stderr
    assert len({r["batch_id"] for r in batches}) == 5


def test_the_app_logs_json(tmp_path):
    code = ("from backend.web import create_app\n"
            "app = create_app()\n"
            "response = app.test_client().get('/api/backfills', headers={'Authorization': 'Bearer ' + 'x' * 40})\n"
            "assert response.status_code == 401\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=subprocess_env(DATABASE_URL=f"sqlite:///{tmp_path / 'shop.db'}", LOG_FORMAT="json",
                                               ADMIN_API_TOKEN=TOKEN, CELERY_BROKER_URL=""))
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stderr)
    assert any(r["level"] == "warning" and "authentication failed (invalid_token)" in r["message"] for r in records)
