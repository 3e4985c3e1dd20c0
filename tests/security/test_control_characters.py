"""Finding: control characters (ESC, BEL, backspace, right-to-left override) were
stored in emails, product names and control reasons, and `run_migrations.py --log`
printed them raw to the operator's terminal (an escape sequence retitled it).

Stored text refuses them at every way in (backend.shop.validation.clean_text); text
printed to a terminal shows them escaped (backend.text.escape_controls)."""
from __future__ import annotations

import pytest

from backend import create_app
from backend.backfill.state import backfill_runs
from backend.config import Config
from backend.migrations.errors import CommandFailed, error_message
from backend.text import escape_controls
from tests.backfill_helpers import insert_rows, touch_service
from tests.test_api_products import PASSWORD, create_user, error_of, make_app, product_payload, scalar
from tests.test_batched_cli import run_migrations

HOSTILE = {
    "escape sequence (retitles a terminal)": "\x1b]0;pwned\x07",
    "bell": "ding\x07",
    "backspace": "admin\x08\x08\x08\x08\x08user",
    "right-to-left override": "invoice\u202egnp.exe",
    "C1 control": "\x9bJ",
    "line separator": "a\u2028b",
}


@pytest.fixture
def client(sqlite_url):
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url)
    client = app.test_client()
    client.application = app
    yield client
    app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_emails_with_control_characters_are_refused(client, text):
    response = client.post("/api/users", json={"email": f"{text}@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "email" in error_of(response)["details"]["fields"]
    assert scalar(client.application, "SELECT count(*) FROM users") == 0


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_product_names_and_descriptions_with_control_characters_are_refused(client, text):
    owner = create_user(client)
    for translation, field in [({"name": f"Tea {text}"}, "translations.en.name"),
                               ({"name": "Tea", "description": f"Leaves {text}"}, "translations.en.description")]:
        response = client.post("/api/products", json=product_payload(owner["id"], translations={"en": translation}))
        assert response.status_code == 400, field
        assert error_of(response)["details"]["fields"][field] == "must not contain control characters"
    assert scalar(client.application, "SELECT count(*) FROM product_translations") == 0


def test_a_description_keeps_its_line_breaks_and_tabs(client):
    owner = create_user(client)
    description = "Loose leaf.\n\n\tSteep 3 minutes.\r\n"
    response = client.post("/api/products", json=product_payload(
        owner["id"], translations={"en": {"name": "Tea", "description": description}}))
    assert response.status_code == 201 and response.json["description"] == description.strip()


@pytest.fixture
def running_run(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    yield sqlite_url, service, run_id
    service.engine.dispose()


def test_control_reasons_with_control_characters_are_refused_by_the_api(running_run):
    url, service, run_id = running_run
    token = "T" * 32
    app = create_app(Config.from_env({"DATABASE_URL": url, "ADMIN_API_TOKEN": token,
                                      "BACKFILL_MODULES": "tests.backfills_for_tests"}))
    try:
        response = app.test_client().post(f"/api/backfills/{run_id}/pause", headers={"Authorization": f"Bearer {token}"},
                                          json={"reason": HOSTILE["escape sequence (retitles a terminal)"]})
    finally:
        app.extensions["db_engine"].dispose()
    assert response.status_code == 400
    assert service.get_run(run_id).status == "running"


def test_control_reasons_with_control_characters_are_refused_by_the_cli(running_run):
    url, service, run_id = running_run
    result = run_migrations(url, "--pause", str(run_id), "--reason", "peak \x1b]0;pwned\x07")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "\x1b" not in result.stderr
    assert service.get_run(run_id).status == "running"


def test_the_log_shows_stored_control_characters_escaped(running_run):
    """A reason stored before the rule (or written by another tool) is never sent raw."""
    url, service, run_id = running_run
    stored = "peak \x1b]0;pwned\x07 \u202eevil"
    service.pause(run_id, actor="cli:mallory\x1b[2J", reason=stored)

    log = run_migrations(url, "--log", str(run_id))

    assert log.returncode == 0, log.stderr
    assert "\x1b" not in log.stdout and "\x07" not in log.stdout and "\u202e" not in log.stdout
    assert "(peak \\x1b]0;pwned\\x07 \\u202eevil)" in log.stdout
    assert "by cli:mallory\\x1b[2J" in log.stdout


def test_escaping_leaves_ordinary_text_alone():
    assert escape_controls("Grüner Tee 緑茶 (black friday)") == "Grüner Tee 緑茶 (black friday)"
    assert escape_controls("a\tb\nc") == "a\\tb\\nc"


def test_status_and_one_line_errors_show_a_stored_error_escaped(running_run):
    """A batch error is text from the database driver or a backfill's code: --status
    prints its first line, a failed --batched prints it in its one-line error."""
    url, service, run_id = running_run
    with service.engine.begin() as connection:
        connection.execute(backfill_runs.update().where(backfill_runs.c.id == run_id)
                           .values(last_error="boom \x1b]0;pwned\x07 \u202eevil"))

    status = run_migrations(url, "--status")

    assert status.returncode == 0, status.stderr
    assert "\x1b" not in status.stdout and "\u202e" not in status.stdout
    assert "boom \\x1b]0;pwned\\x07" in status.stdout
    assert error_message(CommandFailed("run failed: boom \x1b[2J")) == "run failed: boom \\x1b[2J"
