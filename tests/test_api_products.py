"""Products API: creation and its validation, look-up, listing, filters, paging.

Every test runs on SQLite and on a fresh PostgreSQL database (`migrated_db_url`).
The small helpers at the top are shared by the other API test modules: `create_user`
signs a customer up and logs in, and the test client then acts as that customer.
Who may call what is tested route by route in tests/security/test_shop_authorization.py.
"""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from backend import create_app
from backend.config import Config
from backend.migrations.alembic_api import upgrade


# --- shared helpers ---------------------------------------------------------------

# These tests sign up and log in far more often than a client may; the limits
# themselves are tested in tests/security/test_login.py.
GENEROUS_LIMITS = {"SIGNUP_RATE_LIMIT": "100000 per minute", "LOGIN_RATE_LIMIT": "100000 per minute",
                   "LOGIN_ACCOUNT_RATE_LIMIT": "100000 per minute"}
PASSWORD = "correct horse"


def make_app(database_url: str, **env: str):
    return create_app(Config.from_env({"DATABASE_URL": database_url, **GENEROUS_LIMITS, **env}))


@pytest.fixture
def app(migrated_db_url):
    app = make_app(migrated_db_url)
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def validation_app(tmp_path_factory):
    """Input is validated before any query, so one SQLite database serves every
    validation case of a module instead of a fresh pair of databases per case. Its
    first user (id 1) is the customer `validation_client` acts as."""
    url = f"sqlite:///{tmp_path_factory.mktemp('validation') / 'shop.db'}"
    upgrade(url)
    app = make_app(url)
    create_user(app.test_client(), "validator@example.com")
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture
def validation_client(validation_app):
    """A client of `validation_app` logged in as its user 1."""
    client = validation_app.test_client()
    act_as(client, log_in(client, "validator@example.com"))
    return client


def sign_up(client, email: str = "owner@example.com", **extra) -> dict:
    response = client.post("/api/users", json={"email": email, "password": PASSWORD, **extra})
    assert response.status_code == 201, response.json
    return response.json


def log_in(client, email: str, password: str = PASSWORD) -> dict:
    """The token pair of a log-in."""
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.json
    return response.json


def act_as(client, tokens: dict):
    """From now on the client's requests carry this access token."""
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens['access_token']}"
    return client


def anonymous(client):
    client.environ_base.pop("HTTP_AUTHORIZATION", None)
    return client


def auth_header(client) -> dict:
    """The Authorization header the client currently sends, for another client."""
    return {"Authorization": client.environ_base["HTTP_AUTHORIZATION"]}


def create_user(client, email: str = "owner@example.com", **extra) -> dict:
    """Sign up and log in: the client then acts as this customer. The user's JSON."""
    user = sign_up(client, email, **extra)
    act_as(client, log_in(client, email))
    return user


def product_payload(owner_id: int, sku: str = "TEA-1", **overrides) -> dict:
    payload = {
        "owner_id": owner_id,
        "sku": sku,
        "price_cents": 450,
        "currency": "EUR",
        "stock": 10,
        "translations": {
            "en": {"name": "Green tea", "description": "Loose leaf"},
            "de": {"name": "Grüner Tee", "description": "Lose Blätter"},
        },
    }
    payload.update(overrides)
    return payload


def create_product(client, owner_id: int, sku: str = "TEA-1", **overrides) -> dict:
    response = client.post("/api/products", json=product_payload(owner_id, sku, **overrides))
    assert response.status_code == 201, response.json
    return response.json


def error_of(response) -> dict:
    assert response.is_json, response.data
    return response.json["error"]


def scalar(app, sql: str, **params):
    with app.extensions["db_engine"].connect() as connection:
        return connection.execute(sa.text(sql), params).scalar()


@pytest.fixture
def owner(client) -> dict:
    return create_user(client)


# --- creation -------------------------------------------------------------------

def test_create_product_returns_it_with_location(client, owner):
    response = client.post("/api/products", json=product_payload(owner["id"]))

    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"] == f"/api/products/{body['id']}"
    assert {k: body[k] for k in ("owner_id", "sku", "price_cents", "currency", "stock")} == {
        "owner_id": owner["id"], "sku": "TEA-1", "price_cents": 450, "currency": "EUR", "stock": 10,
    }
    assert (body["name"], body["description"], body["locale"]) == ("Green tea", "Loose leaf", "en")
    assert body["available_locales"] == ["de", "en"]
    assert client.get(response.headers["Location"]).json["sku"] == "TEA-1"


def test_create_product_stores_every_translation_with_a_slug(client, owner):
    product = create_product(client, owner["id"])

    german = client.get(f"/api/products/{product['id']}?lang=de").json
    assert (german["name"], german["description"], german["slug"]) == ("Grüner Tee", "Lose Blätter", "gruener-tee")
    assert product["slug"] == "green-tea"


def test_stock_defaults_to_zero_and_description_to_empty(client, owner):
    payload = product_payload(owner["id"], translations={"en": {"name": "Tea"}})
    del payload["stock"]

    body = client.post("/api/products", json=payload).json

    assert (body["stock"], body["description"]) == (0, "")


def test_same_name_gets_a_distinct_slug_per_locale(client, owner):
    first = create_product(client, owner["id"], "TEA-1")
    second = create_product(client, owner["id"], "TEA-2")

    assert (first["slug"], second["slug"]) == ("green-tea", "green-tea-2")


def test_a_slug_taken_concurrently_is_picked_again(client, owner, monkeypatch):
    """free_slug saw 'green-tea' free, but another writer committed it before our INSERT."""
    from backend.shop import catalog

    create_product(client, owner["id"], "TEA-1")  # takes green-tea / gruener-tee
    real_free_slug, stale = catalog.free_slug, iter(["green-tea", "gruener-tee"])
    monkeypatch.setattr(catalog, "free_slug", lambda connection, locale, name: next(stale, None)
                        or real_free_slug(connection, locale, name))

    response = client.post("/api/products", json=product_payload(owner["id"], "TEA-2"))

    assert response.status_code == 201, response.json
    assert response.json["slug"] == "green-tea-2"


INVALID_FIELDS = [
    ({"price_cents": -1}, "price_cents"),
    ({"price_cents": "450"}, "price_cents"),
    ({"price_cents": 4.5}, "price_cents"),
    ({"price_cents": True}, "price_cents"),
    ({"price_cents": 2**31}, "price_cents"),
    ({"price_cents": None}, "price_cents"),
    ({"stock": -3}, "stock"),
    ({"stock": "3"}, "stock"),
    ({"currency": "eur"}, "currency"),
    ({"currency": "EURO"}, "currency"),
    ({"currency": 978}, "currency"),
    ({"sku": ""}, "sku"),
    ({"sku": "has space"}, "sku"),
    ({"sku": "x" * 65}, "sku"),
    ({"sku": "nul\x00byte"}, "sku"),
    ({"sku": 7}, "sku"),
    ({"owner_id": 0}, "owner_id"),
    ({"owner_id": "1"}, "owner_id"),
    ({"owner_id": 2**63}, "owner_id"),
    ({"translations": {}}, "translations"),
    ({"translations": [{"name": "x"}]}, "translations"),
    ({"translations": {"en": "Tea"}}, "translations.en"),
    ({"translations": {"en": {"name": ""}}}, "translations.en.name"),
    ({"translations": {"en": {"name": "a" * 256}}}, "translations.en.name"),
    ({"translations": {"en": {"name": "Tea", "description": 5}}}, "translations.en.description"),
    ({"translations": {"en": {"name": "bad \ud800 surrogate"}}}, "translations.en.name"),
    ({"translations": {"en": {"name": "Tea"}, "xx": {"name": "Tea"}}}, "translations.xx"),
    ({"translations": {"de": {"name": "Tee"}}}, "translations.en"),  # default locale missing
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_FIELDS)
def test_invalid_fields_are_a_400_naming_the_field(validation_app, validation_client, overrides, field):
    app = validation_app
    body = json.dumps({**product_payload(owner_id=1), **overrides})  # ASCII-escaped: lone surrogates survive
    response = validation_client.post("/api/products", data=body, content_type="application/json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert field in error["details"]["fields"]
    assert scalar(app, "SELECT count(*) FROM products") == 0


def test_every_missing_field_is_reported_at_once(validation_client):
    error = error_of(validation_client.post("/api/products", json={}))

    # owner_id is not among them: the owner is the customer who creates the product
    assert set(error["details"]["fields"]) == {"sku", "price_cents", "currency", "translations"}


def test_the_owner_is_the_customer_who_creates_the_product(client, owner):
    payload = product_payload(owner["id"])
    del payload["owner_id"]

    assert client.post("/api/products", json=payload).json["owner_id"] == owner["id"]


def test_duplicate_sku_is_a_409(app, client, owner):
    create_product(client, owner["id"], "TEA-1")

    response = client.post("/api/products", json=product_payload(owner["id"], "TEA-1"))

    assert response.status_code == 409
    assert error_of(response)["code"] == "sku_taken"
    assert scalar(app, "SELECT count(*) FROM products") == 1


@pytest.mark.parametrize("owner_id", [999, "someone else"])
def test_a_product_for_another_owner_is_a_403_and_writes_nothing(app, client, owner, owner_id):
    other = sign_up(client, "other@example.com")["id"] if owner_id == "someone else" else owner_id

    response = client.post("/api/products", json=product_payload(other))

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert scalar(app, "SELECT count(*) FROM product_translations") == 0


@pytest.mark.parametrize("path", ["/api/products", "/api/users", "/api/orders"])
def test_malformed_json_is_a_400(validation_client, path):
    response = validation_client.post(path, data='{"sku": ', content_type="application/json")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_absurdly_nested_json_is_a_400_not_a_500(validation_client):
    response = validation_client.post("/api/products", data="[" * 100_000, content_type="application/json")

    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/api/products", "/api/users", "/api/orders"])
def test_a_body_not_declared_as_json_is_a_415(validation_client, path):
    response = validation_client.post(path, data='{"sku": "x"}', content_type="text/plain")

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("body", ["[]", '"text"', "null", "42"])
def test_a_body_that_is_not_an_object_is_a_400(validation_client, body):
    response = validation_client.post("/api/products", data=body, content_type="application/json")

    assert response.status_code == 400
    assert error_of(response)["details"]["fields"] == {"body": "must be a JSON object"}


# --- look-up --------------------------------------------------------------------

@pytest.mark.parametrize(("product_id", "code"), [
    ("999", "product_not_found"),
    (str(2**63), "product_not_found"),  # beyond BIGINT: must not reach PostgreSQL
    (str(2**70), "product_not_found"),
    ("-1", "not_found"),  # no route matches
    ("abc", "not_found"),
])
def test_unknown_product_is_a_json_404(client, product_id, code):
    response = client.get(f"/api/products/{product_id}")

    assert response.status_code == 404
    assert error_of(response)["code"] == code


# --- listing --------------------------------------------------------------------

def test_listing_pages_through_every_product_once(client, owner):
    created = [create_product(client, owner["id"], f"SKU-{n}")["id"] for n in range(5)]

    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor is not None else "")
        body = client.get(f"/api/products?{query}").json
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == sorted(created)
    assert pages == 3


def test_listing_defaults_to_20_items(client, owner):
    for n in range(21):
        create_product(client, owner["id"], f"SKU-{n}", translations={"en": {"name": f"Item {n}"}})

    body = client.get("/api/products").json

    assert len(body["items"]) == 20
    assert body["next_cursor"] == body["items"][-1]["id"]
    assert len(client.get(f"/api/products?cursor={body['next_cursor']}").json["items"]) == 1


@pytest.mark.parametrize("query", [
    "limit=0", "limit=101", "limit=abc", "limit=-5", "limit=1.5", "cursor=-1", "cursor=x",
    "owner_id=abc", "min_price=-1", "max_price=1e3", "min_price=500&max_price=100",
    "in_stock=maybe", "currency=eur",
])
def test_bad_query_parameters_are_a_400(validation_app, query):
    response = validation_app.test_client().get(f"/api/products?{query}")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


def test_limit_100_is_allowed(client):
    assert client.get("/api/products?limit=100").status_code == 200


def test_listing_filters(client, owner):
    cheap = create_product(client, owner["id"], "CHEAP", price_cents=100, stock=0)
    mid = create_product(client, owner["id"], "MID", price_cents=500, stock=3)
    other = create_user(client, "other@example.com")  # the client now acts as `other`
    dear = create_product(client, other["id"], "DEAR", price_cents=900, stock=1, currency="USD")

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/products?{query}")
        assert response.status_code == 200, response.json
        return [item["id"] for item in response.json["items"]]

    assert ids(f"owner_id={other['id']}") == [dear["id"]]
    assert ids("min_price=500") == [mid["id"], dear["id"]]
    assert ids("max_price=500") == [cheap["id"], mid["id"]]
    assert ids("min_price=200&max_price=800") == [mid["id"]]
    assert ids("in_stock=true") == [mid["id"], dear["id"]]
    assert ids("in_stock=false") == [cheap["id"]]
    assert ids("currency=USD") == [dear["id"]]
    assert ids(f"owner_id={owner['id']}&in_stock=1") == [mid["id"]]
