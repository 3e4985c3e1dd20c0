"""Finding: database errors logged their SQL parameters (customers' emails).

Every engine the project makes (backend.db.create_db_engine: app, worker, Alembic,
scripts) hides bound parameters from its errors, so no log line or traceback that
prints one carries them."""
from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from backend.db import create_db_engine
from backend.shop import users
from tests.test_api_products import make_app

EMAIL = "secret.customer@example.com"


def test_a_failed_statement_does_not_show_its_parameters(migrated_db_url):
    engine = create_db_engine(migrated_db_url)
    insert = sa.text("INSERT INTO users (email, email_normalized, password_hash) VALUES (:e, :e, 'x')")
    try:
        with engine.begin() as connection:
            connection.execute(insert, {"e": EMAIL})
        with pytest.raises(sa.exc.IntegrityError) as failure, engine.begin() as connection:
            connection.execute(insert, {"e": EMAIL})
    finally:
        engine.dispose()
    message = str(failure.value)
    assert "INSERT INTO users" in message  # the statement is still there to debug with
    assert "[parameters" not in message and "'secret.customer" not in message.split("DETAIL")[0]


def test_an_unexpected_database_error_in_a_request_logs_no_parameters(migrated_db_url, monkeypatch, caplog):
    app = make_app(migrated_db_url)

    def failing_sign_up(session, payload, config):
        session.execute(sa.text("SELECT no_such_column FROM users WHERE email = :e"), {"e": payload["email"]})

    monkeypatch.setattr(users, "create_user", failing_sign_up)
    try:
        with caplog.at_level(logging.ERROR):
            response = app.test_client().post("/api/users", json={"email": EMAIL, "password": "correct horse"})
    finally:
        app.extensions["db_engine"].dispose()
    assert response.status_code == 500 and response.json["error"]["code"] == "internal_error"
    logged = "\n".join(record.getMessage() + (logging.Formatter().formatException(record.exc_info)
                                              if record.exc_info else "") for record in caplog.records)
    assert "no_such_column" in logged  # the error is logged...
    assert EMAIL not in logged  # ...without the customer's address
