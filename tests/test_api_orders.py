"""Users and orders API: users' creation and look-up; placing orders (stock,
prices, currency, all-or-nothing, concurrency); reading orders back. Requests go
as the customer the client was last logged in as (`create_user`); who may call
what is tested in tests/security/test_shop_authorization.py."""
from __future__ import annotations

import json
import threading

import pytest
from werkzeug.security import check_password_hash

from backend.migrations.alembic_api import upgrade
from tests.test_api_products import (  # noqa: F401 - fixtures
    app, auth_header, client, create_product, create_user, error_of, make_app, scalar, validation_app,
    validation_client,
)


# --- users ----------------------------------------------------------------------

def test_create_user_hides_the_password(app, client):
    response = client.post("/api/users", json={"email": "ann@example.com", "password": "correct horse"})

    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/users/{response.json['id']}"
    assert set(response.json) == {"id", "email", "preferred_locale", "created_at"}
    assert b"correct horse" not in response.data
    stored = scalar(app, "SELECT password_hash FROM users WHERE id = :id", id=response.json["id"])
    assert stored != "correct horse"
    assert check_password_hash(stored, "correct horse")


def test_create_user_stores_the_normalized_email(app, client):
    user = create_user(client, " Ann@Example.COM ")

    assert user["email"] == "Ann@Example.COM"
    assert scalar(app, "SELECT email_normalized FROM users WHERE id = :id", id=user["id"]) == "ann@example.com"


def test_preferred_locale_defaults_to_the_default_locale(client):
    assert create_user(client)["preferred_locale"] == "en"
    assert create_user(client, "jp@example.com", preferred_locale="ja")["preferred_locale"] == "ja"


def test_get_user(client):
    user = create_user(client)

    response = client.get(f"/api/users/{user['id']}")

    assert response.status_code == 200
    assert response.json == user


def test_me_is_the_logged_in_user(client):
    user = create_user(client)

    assert client.get("/api/users/me").json == user


@pytest.mark.parametrize("user_id", ["999", str(2**64)])
def test_unknown_user_is_a_404(client, user_id):
    create_user(client)

    response = client.get(f"/api/users/{user_id}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "user_not_found"


def test_an_address_of_a_user_the_email_backfill_has_not_reached_yet_is_taken_too(db_url):
    """Before users_email_normalized has run (so before its contract, revision 0009, the
    app can be serving), an old user's email_normalized is NULL."""
    upgrade(db_url, "0008_customer_sessions")
    app = make_app(db_url)
    try:
        with app.extensions["db_engine"].begin() as connection:
            connection.exec_driver_sql("INSERT INTO users (email, preferred_locale, password_hash) "
                                       "VALUES ('Legacy@Example.org', 'en', 'x')")

        response = app.test_client().post("/api/users", json={"email": "legacy@example.org",
                                                               "password": "correct horse"})

        assert response.status_code == 409 and error_of(response)["code"] == "email_taken"
        assert scalar(app, "SELECT count(*) FROM users") == 1
    finally:
        app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("email", ["ann@example.com", "ANN@Example.com"])
def test_a_taken_email_is_a_409(app, client, email):
    create_user(client, "ann@example.com")

    response = client.post("/api/users", json={"email": email, "password": "another one"})

    assert response.status_code == 409
    assert error_of(response)["code"] == "email_taken"
    assert scalar(app, "SELECT count(*) FROM users") == 1


@pytest.mark.parametrize(("payload", "field"), [
    ({"password": "correct horse"}, "email"),
    ({"email": "not-an-email", "password": "correct horse"}, "email"),
    ({"email": "a b@example.com", "password": "correct horse"}, "email"),
    ({"email": 5, "password": "correct horse"}, "email"),
    ({"email": "x" * 320 + "@example.com", "password": "correct horse"}, "email"),
    ({"email": "ann@example.com"}, "password"),
    ({"email": "ann@example.com", "password": "short"}, "password"),
    ({"email": "ann@example.com", "password": 12345678}, "password"),
    ({"email": "ann@example.com", "password": "x" * 1025}, "password"),
    ({"email": "ann@example.com", "password": "correct horse", "preferred_locale": "xx"}, "preferred_locale"),
    ({"email": "ann@example.com", "password": "correct horse", "preferred_locale": ["en"]}, "preferred_locale"),
])
def test_invalid_user_fields_are_a_400(validation_app, payload, field):
    response = validation_app.test_client().post("/api/users", json=payload)

    assert response.status_code == 400
    assert field in error_of(response)["details"]["fields"]
    assert scalar(validation_app, "SELECT count(*) FROM users WHERE email LIKE 'ann@%'") == 0


# --- placing orders -------------------------------------------------------------

@pytest.fixture
def shop(client) -> dict:
    """Three products of an owner (two in EUR, one in USD) and a buyer, whom the client
    acts as."""
    owner = create_user(client, "owner@example.com")
    products = {
        "tea": create_product(client, owner["id"], "TEA", price_cents=450, stock=10),
        "cup": create_product(client, owner["id"], "CUP", price_cents=1200, stock=2),
        "usd": create_product(client, owner["id"], "USD", price_cents=999, stock=5, currency="USD"),
    }
    return {"owner": owner, "buyer": create_user(client, "buyer@example.com"), **products}


def order(client, user_id: int, *lines: tuple[int, int], **extra):
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return client.post("/api/orders", json={"user_id": user_id, "items": items, **extra})


def stock(client, product: dict) -> int:
    return client.get(f"/api/products/{product['id']}").json["stock"]


def test_order_copies_prices_computes_the_total_and_takes_stock(app, client, shop):
    tea, cup = shop["tea"], shop["cup"]

    response = order(client, shop["buyer"]["id"], (tea["id"], 3), (cup["id"], 2))

    assert response.status_code == 201, response.json
    body = response.json
    assert response.headers["Location"] == f"/api/orders/{body['id']}"
    assert (body["user_id"], body["status"], body["currency"]) == (shop["buyer"]["id"], "pending", "EUR")
    assert [(i["product_id"], i["quantity"], i["unit_price_cents"], i["line_total_cents"]) for i in body["items"]] == [
        (tea["id"], 3, 450, 1350), (cup["id"], 2, 1200, 2400),
    ]
    assert body["total_cents"] == 3750
    assert scalar(app, "SELECT total_cents FROM orders WHERE id = :id", id=body["id"]) == 3750
    assert (stock(client, tea), stock(client, cup)) == (7, 0)


def test_a_later_price_change_does_not_alter_the_order(app, client, shop):
    placed = order(client, shop["buyer"]["id"], (shop["tea"]["id"], 1)).json
    with app.extensions["db_engine"].begin() as connection:
        connection.exec_driver_sql(f"UPDATE products SET price_cents = 1 WHERE id = {shop['tea']['id']}")

    fetched = client.get(f"/api/orders/{placed['id']}").json

    assert fetched["items"][0]["unit_price_cents"] == 450
    assert fetched["total_cents"] == 450
    assert fetched == placed


def test_duplicate_lines_are_merged(client, shop):
    tea = shop["tea"]

    body = order(client, shop["buyer"]["id"], (tea["id"], 2), (tea["id"], 3)).json

    assert [(i["product_id"], i["quantity"]) for i in body["items"]] == [(tea["id"], 5)]
    assert body["total_cents"] == 5 * 450
    assert stock(client, tea) == 5


def test_merged_lines_are_checked_against_stock_as_a_whole(client, shop):
    cup = shop["cup"]  # 2 in stock

    response = order(client, shop["buyer"]["id"], (cup["id"], 1), (cup["id"], 2))

    assert response.status_code == 409
    assert error_of(response)["details"] == {"product_id": cup["id"], "requested": 3, "available": 2}


def test_short_stock_is_a_409_and_nothing_is_written(app, client, shop):
    tea, cup = shop["tea"], shop["cup"]  # tea is taken first (lower id), then cup is short

    response = order(client, shop["buyer"]["id"], (tea["id"], 4), (cup["id"], 3))

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "insufficient_stock"
    assert error["details"] == {"product_id": cup["id"], "requested": 3, "available": 2}
    assert (stock(client, tea), stock(client, cup)) == (10, 2)
    assert scalar(app, "SELECT count(*) FROM orders") == 0
    assert scalar(app, "SELECT count(*) FROM order_items") == 0


def test_an_order_can_take_the_last_unit(client, shop):
    cup = shop["cup"]

    assert order(client, shop["buyer"]["id"], (cup["id"], 2)).status_code == 201
    assert order(client, shop["buyer"]["id"], (cup["id"], 1)).status_code == 409
    assert stock(client, cup) == 0


def test_unknown_product_is_a_422_and_nothing_is_written(app, client, shop):
    response = order(client, shop["buyer"]["id"], (shop["tea"]["id"], 1), (999_999, 1))

    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["details"]) == ("unknown_product", {"product_id": 999_999})
    assert stock(client, shop["tea"]) == 10


@pytest.mark.parametrize("user_id", [999_999, "owner"])
def test_an_order_for_another_user_is_a_403_and_takes_no_stock(app, client, shop, user_id):
    response = order(client, shop["owner"]["id"] if user_id == "owner" else user_id, (shop["tea"]["id"], 1))

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert stock(client, shop["tea"]) == 10
    assert scalar(app, "SELECT count(*) FROM orders") == 0


def test_an_order_without_user_id_is_the_buyers(client, shop):
    response = client.post("/api/orders", json={"items": [{"product_id": shop["tea"]["id"], "quantity": 1}]})

    assert response.status_code == 201
    assert response.json["user_id"] == shop["buyer"]["id"]


def test_the_order_takes_the_products_currency(client, shop):
    assert order(client, shop["buyer"]["id"], (shop["usd"]["id"], 1)).json["currency"] == "USD"


def test_an_explicit_matching_currency_is_accepted(client, shop):
    response = order(client, shop["buyer"]["id"], (shop["tea"]["id"], 1), currency="EUR")

    assert (response.status_code, response.json["currency"]) == (201, "EUR")


@pytest.mark.parametrize("currency", [None, "EUR", "GBP"])
def test_mixed_or_mismatched_currencies_are_a_422(app, client, shop, currency):
    extra = {} if currency is None else {"currency": currency}
    lines = [(shop["tea"]["id"], 1)] if currency == "GBP" else [(shop["tea"]["id"], 1), (shop["usd"]["id"], 1)]

    response = order(client, shop["buyer"]["id"], *lines, **extra)

    assert response.status_code == 422
    assert error_of(response)["code"] == "currency_mismatch"
    assert stock(client, shop["tea"]) == 10
    assert scalar(app, "SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize(("payload", "field"), [
    ({"user_id": "1", "items": [{"product_id": 1, "quantity": 1}]}, "user_id"),
    ({"user_id": 1}, "items"),
    ({"user_id": 1, "items": []}, "items"),
    ({"user_id": 1, "items": {"product_id": 1, "quantity": 1}}, "items"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": 1}] * 101}, "items"),
    ({"user_id": 1, "items": [3]}, "items.0"),
    ({"user_id": 1, "items": [{"product_id": 1}]}, "items.0.quantity"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": 0}]}, "items.0.quantity"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": -2}]}, "items.0.quantity"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": 1.5}]}, "items.0.quantity"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": True}]}, "items.0.quantity"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": 2**31}]}, "items.0.quantity"),
    ({"user_id": 1, "items": [{"product_id": 1, "quantity": 2**31 - 1}, {"product_id": 1, "quantity": 1}]},
     "items.1.quantity"),
    ({"user_id": 1, "items": [{"product_id": "1", "quantity": 1}]}, "items.0.product_id"),
    ({"user_id": 1, "items": [{"product_id": 2**63, "quantity": 1}]}, "items.0.product_id"),
    ({"user_id": 1, "currency": "eur", "items": [{"product_id": 1, "quantity": 1}]}, "currency"),
])
def test_invalid_order_fields_are_a_400(validation_client, payload, field):
    response = validation_client.post("/api/orders", data=json.dumps(payload), content_type="application/json")

    assert response.status_code == 400
    assert field in error_of(response)["details"]["fields"]


def test_concurrent_orders_never_oversell(app, client, shop):
    """Twelve carts race for five units: exactly five win, the rest get a 409."""
    tea, buyer = shop["tea"], auth_header(client)
    with app.extensions["db_engine"].begin() as connection:
        connection.exec_driver_sql(f"UPDATE products SET stock = 5 WHERE id = {tea['id']}")
    start, statuses = threading.Barrier(12), []

    def buy():
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = buyer["Authorization"]
        start.wait()
        statuses.append(order(client, shop["buyer"]["id"], (tea["id"], 1)).status_code)

    threads = [threading.Thread(target=buy) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * 5 + [409] * 7
    assert scalar(app, "SELECT stock FROM products WHERE id = :id", id=tea["id"]) == 0
    assert scalar(app, "SELECT coalesce(sum(quantity), 0) FROM order_items") == 5


# --- reading orders -------------------------------------------------------------

def test_get_order_returns_items_and_total(client, shop):
    placed = order(client, shop["buyer"]["id"], (shop["tea"]["id"], 2), (shop["cup"]["id"], 1)).json

    response = client.get(f"/api/orders/{placed['id']}")

    assert response.status_code == 200
    assert response.json == placed
    assert response.json["total_cents"] == sum(i["line_total_cents"] for i in response.json["items"]) == 2100


@pytest.mark.parametrize(("order_id", "code"), [("999", "order_not_found"), (str(2**63), "order_not_found"),
                                                ("x", "not_found")])
def test_unknown_order_is_a_404(client, order_id, code):
    create_user(client)

    response = client.get(f"/api/orders/{order_id}")

    assert response.status_code == 404
    assert error_of(response)["code"] == code


def test_user_orders_are_paged_newest_first(client, shop):
    buyer, tea = shop["buyer"], shop["tea"]
    placed = [order(client, buyer["id"], (tea["id"], 1)).json["id"] for _ in range(5)]
    as_buyer = auth_header(client)
    other = create_user(client, "other@example.com")
    order(client, other["id"], (tea["id"], 1))

    url = f"/api/users/{buyer['id']}/orders?limit=2"
    first = client.get(url, headers=as_buyer).json
    second = client.get(f"{url}&cursor={first['next_cursor']}", headers=as_buyer).json
    third = client.get(f"{url}&cursor={second['next_cursor']}", headers=as_buyer).json

    pages = [[o["id"] for o in page["items"]] for page in (first, second, third)]
    assert pages == [placed[4:2:-1], placed[2:0:-1], placed[:1]]
    assert third["next_cursor"] is None
    assert first["items"][0]["total_cents"] == 450
    assert first["items"][0]["items"][0]["product_id"] == tea["id"]


def test_user_without_orders_has_an_empty_page(client, shop):
    response = client.get(f"/api/users/{shop['buyer']['id']}/orders")

    assert (response.status_code, response.json) == (200, {"items": [], "next_cursor": None})


def test_orders_of_an_unknown_user_is_a_404(client):
    create_user(client)

    response = client.get("/api/users/999/orders")

    assert response.status_code == 404
    assert error_of(response)["code"] == "user_not_found"


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=abc"])
def test_user_orders_bad_paging_is_a_400(client, query):
    user = create_user(client)

    response = client.get(f"/api/users/{user['id']}/orders?{query}")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"
