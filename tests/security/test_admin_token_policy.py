"""Finding: weak operations tokens accepted, guesses unthrottled (`ADMIN_API_TOKEN=a`
started the app and `Bearer a` got 200; 300 wrong guesses in 3 s, all 401).

A token part shorter than 32 characters stops every entry point with a one-line
error; failed authentications are limited per client and logged without the token."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from backend import create_app
from backend.auth.admin_token import admin_token_problem
from backend.config import Config, ConfigError
from backend.migrations.alembic_api import upgrade
from tests.processes import ROOT, free_port, subprocess_env

GOOD_TOKEN = "T" * 32


@pytest.mark.parametrize("setting", ["a", "ops:a", "ops:" + "x" * 31, "x" * 31])
def test_a_short_token_is_a_configuration_error(setting):
    with pytest.raises(ConfigError, match="at least 32 are required"):
        Config.from_env({"ADMIN_API_TOKEN": setting})


@pytest.mark.parametrize("setting", [GOOD_TOKEN, "ops:" + GOOD_TOKEN, None, "", "   "])
def test_a_long_token_or_none_is_accepted(setting):
    assert admin_token_problem(setting) is None


@pytest.mark.parametrize("script", [["run.py", "--no-migrate"], ["run_migrations.py", "--status"]])
def test_the_app_and_the_scripts_refuse_to_start_with_a_short_token(sqlite_url, script):
    args = [*script, "--port", str(free_port())] if script[0] == "run.py" else script
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=subprocess_env(DATABASE_URL=sqlite_url, ADMIN_API_TOKEN="a"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith("Error: configuration error: ADMIN_API_TOKEN's token is 1 characters")


@pytest.fixture
def app(sqlite_url):
    upgrade(sqlite_url, "head")
    app = create_app(Config.from_env({"DATABASE_URL": sqlite_url, "ADMIN_API_TOKEN": f"ops:{GOOD_TOKEN}",
                                      "ADMIN_AUTH_FAILURE_RATE_LIMIT": "5 per minute"}))
    yield app
    app.extensions["db_engine"].dispose()


def test_failed_guesses_are_throttled_per_client(app):
    client = app.test_client()
    guesses = [client.get("/api/backfills", headers={"Authorization": f"Bearer guess-{n}"}).status_code
               for n in range(7)]
    right_token_now = client.get("/api/backfills", headers={"Authorization": f"Bearer {GOOD_TOKEN}"})
    other_client = client.get("/api/backfills", headers={"Authorization": f"Bearer {GOOD_TOKEN}"},
                              environ_base={"REMOTE_ADDR": "192.0.2.50"})

    assert guesses == [401] * 5 + [429] * 2
    assert right_token_now.status_code == 429  # the guessing client waits out the window
    assert right_token_now.is_json and int(right_token_now.headers["Retry-After"]) > 0
    assert other_client.status_code == 200


def test_successful_calls_are_never_throttled(app):
    client = app.test_client()
    statuses = {client.get("/api/backfills", headers={"Authorization": f"Bearer {GOOD_TOKEN}"}).status_code
                for _ in range(20)}
    assert statuses == {200}


def test_failures_are_logged_without_the_token(app, caplog):
    near_miss = GOOD_TOKEN[:-1] + "U"
    with caplog.at_level(logging.WARNING):
        app.test_client().get("/api/backfills", headers={"Authorization": f"Bearer {near_miss}"})
    failures = [record.getMessage() for record in caplog.records if "authentication failed" in record.getMessage()]
    assert failures and "invalid_token" in failures[0] and "127.0.0.1" in failures[0]
    assert not any(near_miss in record.getMessage() or GOOD_TOKEN in record.getMessage()
                   for record in caplog.records)
