"""Finding: the shop had no customer authentication. What the log-in, refresh,
log-out and password change promise (backend.web.shop.auth, backend.auth): one
answer for every failed log-in, rate limits per client and per account (in Redis
when the broker is Redis), revocation that works at once, refresh tokens that
cannot be replayed, and a password change that ends every session."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from backend.auth import passwords
from backend.config import Config, ConfigError
from tests.test_api_products import PASSWORD, error_of, log_in, make_app, scalar, sign_up


@pytest.fixture
def app(sqlite_url):
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url)
    yield app
    app.extensions["db_engine"].dispose()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer_and_work(app, monkeypatch):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    checks = []
    real_check = passwords.check_password_hash
    monkeypatch.setattr(passwords, "check_password_hash", lambda *a: checks.append(a) or real_check(*a))

    wrong = client.post("/api/auth/login", json={"email": "ann@example.com", "password": "not the one"})
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "not the one"})

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert error_of(wrong)["code"] == "invalid_credentials"
    # One scrypt check each: the unknown address costs as much time as a known one.
    assert len(checks) == 2 and all(stored.startswith("scrypt:") for stored, _password in checks)


def test_log_in_matches_the_address_in_any_spelling(app):
    client = app.test_client()
    user = sign_up(client, "Ann@Example.com")
    tokens = log_in(client, " ann@EXAMPLE.com ")
    assert client.get("/api/users/me", headers=bearer(tokens["access_token"])).json["id"] == user["id"]
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900


def test_log_in_attempts_are_limited_per_client(sqlite_url):
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url, LOGIN_RATE_LIMIT="3 per minute")
    try:
        client = app.test_client()
        sign_up(client, "ann@example.com")
        statuses = [client.post("/api/auth/login", json={"email": f"guess{n}@example.com", "password": "x" * 8})
                    .status_code for n in range(4)]
        limited = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
        elsewhere = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD},
                                environ_base={"REMOTE_ADDR": "192.0.2.7"})
    finally:
        app.extensions["db_engine"].dispose()
    assert statuses == [401, 401, 401, 429]
    assert limited.status_code == 429 and error_of(limited)["code"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) > 0
    assert elsewhere.status_code == 200  # another client is not slowed down


def test_log_in_attempts_are_limited_per_account_across_clients(sqlite_url):
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url, LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")
    try:
        client = app.test_client()
        sign_up(client, "ann@example.com")
        sign_up(client, "bob@example.com")

        def attempt(email: str, n: int):
            return client.post("/api/auth/login", json={"email": email, "password": "wrong-password"},
                               environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}).status_code

        statuses = [attempt("ANN@example.com" if n % 2 else "ann@example.com", n) for n in range(4)]
        other_account = attempt("bob@example.com", 99)
    finally:
        app.extensions["db_engine"].dispose()
    assert statuses == [401, 401, 401, 429]  # the spelling does not start a new count
    assert other_account == 401


def test_sign_ups_are_limited_per_client(sqlite_url):
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url, SIGNUP_RATE_LIMIT="2 per minute")
    try:
        client = app.test_client()
        statuses = [client.post("/api/users", json={"email": f"u{n}@example.com", "password": PASSWORD}).status_code
                    for n in range(3)]
        users = scalar(app, "SELECT count(*) FROM users")
    finally:
        app.extensions["db_engine"].dispose()
    assert statuses == [201, 201, 429] and users == 2


def test_limits_are_shared_through_redis_when_the_broker_is_redis(sqlite_url, redis_available):
    """Two apps (two gunicorn workers, or two replicas) count the same client together."""
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    env = {"CELERY_BROKER_URL": redis_available, "LOGIN_RATE_LIMIT": "2 per minute"}
    first, second = make_app(sqlite_url, **env), make_app(sqlite_url, **env)
    client_address = f"203.0.113.{uuid.uuid4().int % 250 + 1}"  # a fresh count in a shared Redis
    nonce = uuid.uuid4().hex
    try:
        def attempt(app, n):
            return app.test_client().post("/api/auth/login", environ_base={"REMOTE_ADDR": client_address},
                                          json={"email": f"{nonce}{n}@example.com", "password": "x" * 8}).status_code

        statuses = [attempt(first, 0), attempt(second, 1), attempt(first, 2)]
    finally:
        first.extensions["db_engine"].dispose()
        second.extensions["db_engine"].dispose()
    assert statuses == [401, 401, 429]


def test_log_out_revokes_both_tokens_at_once(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    tokens = log_in(client, "ann@example.com")

    assert client.post("/api/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204

    for token, url in [(tokens["access_token"], "/api/users/me"), (tokens["refresh_token"], "/api/auth/refresh")]:
        response = client.open(url, method="GET" if url.endswith("me") else "POST", headers=bearer(token))
        assert response.status_code == 401 and error_of(response)["code"] == "token_revoked", url


def test_log_out_ends_only_that_session(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    phone, laptop = log_in(client, "ann@example.com"), log_in(client, "ann@example.com")
    client.post("/api/auth/logout", headers=bearer(phone["refresh_token"]))  # either token logs out
    assert client.get("/api/users/me", headers=bearer(phone["access_token"])).status_code == 401
    assert client.get("/api/users/me", headers=bearer(laptop["access_token"])).status_code == 200


def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_session(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    first = log_in(client, "ann@example.com")

    second = client.post("/api/auth/refresh", headers=bearer(first["refresh_token"]))
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]
    assert client.get("/api/users/me", headers=bearer(second.json["access_token"])).status_code == 200

    replayed = client.post("/api/auth/refresh", headers=bearer(first["refresh_token"]))
    assert replayed.status_code == 401
    # The replay may be a thief's: the whole session ends, the legitimate new pair too.
    assert client.post("/api/auth/refresh", headers=bearer(second.json["refresh_token"])).status_code == 401
    assert client.get("/api/users/me", headers=bearer(second.json["access_token"])).status_code == 401


def test_an_access_token_cannot_refresh_and_a_refresh_token_cannot_call_the_shop(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    tokens = log_in(client, "ann@example.com")
    assert client.post("/api/auth/refresh", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.get("/api/users/me", headers=bearer(tokens["refresh_token"])).status_code == 401


def test_tokens_are_read_from_the_header_only(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    tokens = log_in(client, "ann@example.com")
    assert client.get(f"/api/users/me?jwt={tokens['access_token']}").status_code == 401


def test_a_password_change_needs_the_current_one_and_ends_every_session(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    phone, laptop = log_in(client, "ann@example.com"), log_in(client, "ann@example.com")
    stored = scalar(app, "SELECT password_hash FROM users")

    wrong = client.post("/api/auth/password", headers=bearer(phone["access_token"]),
                        json={"current_password": "not it", "new_password": "brand new secret"})
    assert wrong.status_code == 403 and error_of(wrong)["code"] == "wrong_password"
    assert scalar(app, "SELECT password_hash FROM users") == stored
    assert client.get("/api/users/me", headers=bearer(laptop["access_token"])).status_code == 200

    changed = client.post("/api/auth/password", headers=bearer(phone["access_token"]),
                          json={"current_password": PASSWORD, "new_password": "brand new secret"})
    assert changed.status_code == 200
    assert scalar(app, "SELECT password_hash FROM users").startswith("scrypt:")
    for old in (phone, laptop):
        assert client.get("/api/users/me", headers=bearer(old["access_token"])).status_code == 401
        assert client.post("/api/auth/refresh", headers=bearer(old["refresh_token"])).status_code == 401
    assert client.get("/api/users/me", headers=bearer(changed.json["access_token"])).status_code == 200
    assert client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}).status_code == 401
    assert log_in(client, "ann@example.com", "brand new secret")["access_token"]


def test_responses_with_tokens_are_not_cached(app):
    client = app.test_client()
    sign_up(client, "ann@example.com")
    response = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert response.headers["Cache-Control"] == "no-store"


def test_a_short_secret_key_is_refused():
    with pytest.raises(ConfigError, match="SECRET_KEY is 8 characters, at least 32"):
        Config.from_env({"SECRET_KEY": "changeme"})


def test_sessions_live_in_the_database(app):
    client = app.test_client()
    user = sign_up(client, "ann@example.com")
    log_in(client, "ann@example.com")
    with app.extensions["db_engine"].connect() as connection:
        rows = connection.execute(sa.text("SELECT user_id, revoked_at FROM customer_sessions")).all()
    assert rows == [(user["id"], None)]


def test_limits_go_on_in_memory_while_redis_is_unreachable(sqlite_url):
    """A Redis outage neither fails log-ins (500) nor lifts the limit."""
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url, CELERY_BROKER_URL="redis://127.0.0.1:1/0", LOGIN_RATE_LIMIT="2 per minute")
    try:
        client = app.test_client()
        statuses = [client.post("/api/auth/login", json={"email": "ann@example.com", "password": "x" * 8}).status_code
                    for _ in range(3)]
    finally:
        app.extensions["db_engine"].dispose()
    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(("proxies", "limited"), [(0, True), (1, False)])
def test_x_forwarded_for_counts_only_behind_trusted_proxies(sqlite_url, proxies, limited):
    """Without TRUSTED_PROXIES a forged X-Forwarded-For does not make a new client;
    behind one trusted proxy, the address it appends is the client."""
    from backend.migrations.alembic_api import upgrade

    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url, LOGIN_RATE_LIMIT="1 per minute", TRUSTED_PROXIES=str(proxies))
    try:
        client = app.test_client()
        statuses = [client.post("/api/auth/login", headers={"X-Forwarded-For": f"192.0.2.{n}"},
                                json={"email": "ann@example.com", "password": "x" * 8}).status_code
                    for n in (1, 2)]
    finally:
        app.extensions["db_engine"].dispose()
    assert statuses == ([401, 429] if limited else [401, 401])


def test_two_refreshes_racing_with_one_token_give_one_new_pair(pg_url):
    """The swap is a conditional UPDATE: of requests racing with the same refresh
    token, exactly one gets a new pair (on PostgreSQL, with real concurrency). A racer
    that arrives after the swap presents a spent token, a replay, and may end the
    session: never are two pairs handed out for one refresh token."""
    import threading

    from backend.migrations.alembic_api import upgrade

    upgrade(pg_url, "head")
    app = make_app(pg_url)
    try:
        client = app.test_client()
        sign_up(client, "ann@example.com")
        refresh_token = log_in(client, "ann@example.com")["refresh_token"]
        start, answers = threading.Barrier(4), []

        def refresh():
            racer = app.test_client()
            start.wait()
            answers.append(racer.post("/api/auth/refresh", headers=bearer(refresh_token)))

        threads = [threading.Thread(target=refresh) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [answer.json for answer in answers if answer.status_code == 200]
        assert len(winners) == 1 and sorted(answer.status_code for answer in answers) == [200, 401, 401, 401]
    finally:
        app.extensions["db_engine"].dispose()
