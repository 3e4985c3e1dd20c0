"""Finding: no authentication or authorisation on the shop API (anyone read every
customer and order, ordered for others, created products for others).

Every shop route, called anonymously, by the owner and by another customer: who gets
what (401 / 403 / 404), and that a refused request changes nothing in the database.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.test_api_products import (
    anonymous, auth_header, create_product, create_user, error_of, log_in, make_app, product_payload,
)


@pytest.fixture
def shop(migrated_db_url):
    """Alice owns a product and an order; Bob is another customer. Both headers kept."""
    app = make_app(migrated_db_url)
    client = app.test_client()
    alice = create_user(client, "alice@example.com")
    tea = create_product(client, alice["id"], "TEA", stock=10)
    placed = client.post("/api/orders", json={"items": [{"product_id": tea["id"], "quantity": 1}]})
    assert placed.status_code == 201
    as_alice = auth_header(client)
    bob = create_user(client, "bob@example.com")
    as_bob = auth_header(client)
    yield {"app": app, "client": anonymous(client), "alice": alice, "bob": bob, "tea": tea,
           "order": placed.json, "as_alice": as_alice, "as_bob": as_bob}
    app.extensions["db_engine"].dispose()


def snapshot(app) -> dict:
    """Everything a refused request must leave as it was."""
    with app.extensions["db_engine"].connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).all()
            for table in ("users", "products", "product_translations", "orders", "order_items")
        }


def request(shop, who: str, method: str, url: str, body: dict | None = None):
    headers = {"anonymous": {}, "owner": shop["as_alice"], "other": shop["as_bob"]}[who]
    return shop["client"].open(url, method=method, json=body, headers=headers)


def routes(shop) -> list[tuple[str, str, dict | None]]:
    """Every shop route that is not public, with a body that would succeed for Alice."""
    alice, tea, order = shop["alice"], shop["tea"], shop["order"]
    return [
        ("GET", "/api/users/me", None),
        ("GET", f"/api/users/{alice['id']}", None),
        ("GET", f"/api/users/{alice['id']}/orders", None),
        ("GET", f"/api/orders/{order['id']}", None),
        ("POST", "/api/orders", {"user_id": alice["id"], "items": [{"product_id": tea["id"], "quantity": 1}]}),
        ("POST", "/api/products", product_payload(alice["id"], "NEW-SKU")),
        ("POST", "/api/auth/password", {"current_password": "correct horse", "new_password": "a new secret"}),
        ("POST", "/api/auth/logout", None),
        ("POST", "/api/auth/refresh", None),
    ]


def test_every_route_refuses_anonymous_callers_and_changes_nothing(shop):
    before = snapshot(shop["app"])
    for method, url, body in routes(shop):
        response = request(shop, "anonymous", method, url, body)
        assert response.status_code == 401, (method, url)
        assert error_of(response)["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(shop["app"]) == before


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c",
                                   # alg none, sub 1: signature checks are not optional
                                   "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyJ9."])
def test_forged_tokens_are_refused(shop, token):
    for method, url, body in routes(shop)[:6]:
        response = shop["client"].open(url, method=method, json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (method, url)


def test_a_token_signed_with_another_key_is_refused(shop, migrated_db_url):
    other_app = make_app(migrated_db_url, SECRET_KEY="k" * 40)  # another key than shop["app"]'s
    try:
        tokens = log_in(other_app.test_client(), "alice@example.com")
    finally:
        other_app.extensions["db_engine"].dispose()
    response = shop["client"].get("/api/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_token"


def test_the_owner_reaches_their_own_user_and_orders(shop):
    alice, order = shop["alice"], shop["order"]
    assert request(shop, "owner", "GET", "/api/users/me").json["id"] == alice["id"]
    assert request(shop, "owner", "GET", f"/api/users/{alice['id']}").json["email"] == "alice@example.com"
    assert [o["id"] for o in request(shop, "owner", "GET", f"/api/users/{alice['id']}/orders").json["items"]] \
        == [order["id"]]
    assert request(shop, "owner", "GET", f"/api/orders/{order['id']}").json == order


def test_another_customer_gets_404_for_the_owners_user_and_orders(shop):
    alice, order = shop["alice"], shop["order"]
    before = snapshot(shop["app"])
    for url, code in [(f"/api/users/{alice['id']}", "user_not_found"),
                      (f"/api/users/{alice['id']}/orders", "user_not_found"),
                      (f"/api/orders/{order['id']}", "order_not_found")]:
        response = request(shop, "other", "GET", url)
        assert response.status_code == 404, url
        assert error_of(response)["code"] == code
        assert "alice" not in response.get_data(as_text=True)
    assert snapshot(shop["app"]) == before


def test_unknown_and_foreign_ids_look_the_same(shop):
    """The 404 for Alice's order is the 404 for an order that does not exist: Bob
    cannot tell which ids are taken."""
    foreign = request(shop, "other", "GET", f"/api/orders/{shop['order']['id']}")
    missing = request(shop, "other", "GET", "/api/orders/999999")
    assert foreign.status_code == missing.status_code == 404
    assert error_of(foreign)["code"] == error_of(missing)["code"]


def test_another_customer_cannot_order_or_create_products_for_the_owner(shop):
    alice, tea = shop["alice"], shop["tea"]
    before = snapshot(shop["app"])
    as_other_for_alice = [
        ("/api/orders", {"user_id": alice["id"], "items": [{"product_id": tea["id"], "quantity": 1}]}),
        ("/api/products", product_payload(alice["id"], "BOBS-FAKE")),
    ]
    for url, body in as_other_for_alice:
        response = request(shop, "other", "POST", url, body)
        assert response.status_code == 403, url
        assert error_of(response)["code"] == "forbidden"
    assert snapshot(shop["app"]) == before  # no order, no stock taken, no product


def test_a_customers_order_is_always_their_own(shop):
    """Without user_id the order is the caller's, never the body's or anyone else's."""
    tea, bob = shop["tea"], shop["bob"]
    placed = request(shop, "other", "POST", "/api/orders", {"items": [{"product_id": tea["id"], "quantity": 1}]})
    assert placed.status_code == 201 and placed.json["user_id"] == bob["id"]
    created = request(shop, "other", "POST", "/api/products", {**product_payload(bob["id"], "BOB-1")})
    assert created.status_code == 201 and created.json["owner_id"] == bob["id"]


def test_there_is_no_user_listing(shop):
    for who in ("anonymous", "owner", "other"):
        response = request(shop, who, "GET", "/api/users")
        assert response.status_code == 405, who
        assert "alice@example.com" not in response.get_data(as_text=True)


def test_the_catalogue_and_sign_up_are_public(shop):
    assert request(shop, "anonymous", "GET", "/api/products").status_code == 200
    assert request(shop, "anonymous", "GET", f"/api/products/{shop['tea']['id']}").status_code == 200
    assert request(shop, "anonymous", "POST", "/api/users",
                   {"email": "carol@example.com", "password": "correct horse"}).status_code == 201
