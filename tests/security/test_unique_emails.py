"""Finding: duplicate accounts through a race on PostgreSQL (RaceN@, raceN@, RACEN@
sent at once made 2-3 accounts), and `ann@example.com.` or a Cyrillic look-alike
accepted as new accounts.

Revision 0009 makes users.email_normalized unique (after its backfill, built
concurrently); sign-up relies on it. Trailing dots and look-alikes are refused
(backend.shop.emails)."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from backend.migrations.backfill_ops import BackfillNotFinished
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from tests.test_api_products import PASSWORD, error_of, make_app, scalar, validation_app  # noqa: F401

SPELLINGS = ("Race{n}@sec.io", "race{n}@sec.io", "RACE{n}@SEC.IO")
ROUNDS = 15


def test_a_sign_up_race_ends_in_one_account_and_409s_on_postgresql(pg_url):
    upgrade(pg_url, "head")
    app = make_app(pg_url)
    try:
        for n in range(ROUNDS):
            start, statuses = threading.Barrier(len(SPELLINGS)), []

            def sign_up(email: str):
                client = app.test_client()
                start.wait()
                statuses.append(client.post("/api/users", json={"email": email, "password": PASSWORD}).status_code)

            threads = [threading.Thread(target=sign_up, args=(spelling.format(n=n),)) for spelling in SPELLINGS]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(statuses) == [201, 409, 409], (n, statuses)
        assert scalar(app, "SELECT count(*) FROM users") == ROUNDS
    finally:
        app.extensions["db_engine"].dispose()


def test_the_database_refuses_a_second_account_for_one_address(migrated_db_url):
    """The app's check aside: the unique index alone refuses it."""
    engine = create_db_engine(migrated_db_url)
    try:
        insert = sa.text("INSERT INTO users (email, email_normalized, password_hash) VALUES (:e, 'ann@x.org', 'x')")
        with engine.begin() as connection:
            connection.execute(insert, {"e": "Ann@X.org"})
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(insert, {"e": "ann@x.org"})
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO users (email, password_hash) VALUES ('null@x.org', 'x')"))
    finally:
        engine.dispose()


def test_the_contract_revision_waits_for_the_backfill(pg_url):
    upgrade(pg_url, "0008_customer_sessions")
    engine = create_db_engine(pg_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO users (email, password_hash) VALUES ('Old@X.org', 'x')"))
        with pytest.raises(BackfillNotFinished, match="users_email_normalized"):
            upgrade(pg_url, "0009_users_email_unique")
        with engine.connect() as connection:
            indexes = connection.execute(sa.text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'users'")).scalars().all()
        assert "uq_users_email_normalized" not in indexes and "ix_users_email_normalized" in indexes
    finally:
        engine.dispose()


@pytest.mark.parametrize("email", [
    "ann@example.com.",      # trailing dot: the same mailbox in DNS
    "ann@example..com",      # empty label
    "ann@.example.com",
    "\u0430nn@example.com",  # Cyrillic а in a Latin name
    "ann@ex\u0430mple.com",  # Cyrillic а in the domain
    "\u0455\u0441\u043e\u0440\u0435@example.com",  # all-Cyrillic "scope": passes for ASCII
    "\u03c1\u03bf\u03c1@example.com",  # Greek "pop"
])
def test_trailing_dots_and_look_alikes_are_refused(migrated_db_url, email):
    app = make_app(migrated_db_url)
    try:
        client = app.test_client()
        client.post("/api/users", json={"email": "ann@example.com", "password": PASSWORD})
        response = client.post("/api/users", json={"email": email, "password": PASSWORD})
        assert response.status_code == 400, email
        assert "email" in error_of(response)["details"]["fields"]
        assert scalar(app, "SELECT count(*) FROM users") == 1
    finally:
        app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("email", ["иван@пример.рф", "田中@例え.jp", "Jürgen@Bücher.de", "o'brien+shop@example.co.uk"])
def test_addresses_in_one_script_are_accepted(validation_app, email):
    response = validation_app.test_client().post("/api/users", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
