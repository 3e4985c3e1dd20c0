"""SQLite (the embedded default): concurrent requests that read before they write
(the email check, the slug choice) wait for each other instead of failing with
"database is locked" and a 500."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from backend.migrations.alembic_api import upgrade
from tests.test_api_products import auth_header, create_user, make_app

WRITERS = 12


def test_concurrent_sign_ups_and_products_are_201_or_409_never_500(sqlite_url):
    upgrade(sqlite_url, "head")
    app = make_app(sqlite_url)
    owner_client = app.test_client()
    create_user(owner_client, "owner@example.com")  # user 1, who creates the products
    as_owner = auth_header(owner_client)

    def sign_up(n: int) -> int:
        return app.test_client().post("/api/users", json={"email": f"user{n}@example.com",
                                                          "password": "correct horse"}).status_code

    def new_product(n: int) -> int:
        return app.test_client().post("/api/products", headers=as_owner, json={
            "owner_id": 1, "sku": f"SKU-{n % 4}", "price_cents": 100, "currency": "EUR",
            "translations": {"en": {"name": "Green tea"}}}).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        users = list(pool.map(sign_up, range(WRITERS)))
        products = list(pool.map(new_product, range(WRITERS)))
    app.extensions["db_engine"].dispose()
    assert users == [201] * WRITERS
    assert sorted(products) == [201] * 4 + [409] * (WRITERS - 4)  # four SKUs, the others taken
