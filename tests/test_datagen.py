"""The data generator (backend.datagen) on SQLite and on a real PostgreSQL database.

Small counts keep it fast; `bulk_load.MIN_ROWS` is lowered where the PostgreSQL
bulk-load path (foreign keys and indexes re-created at the end) must run.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from werkzeug.security import check_password_hash

from backend import create_app
from backend.config import PROJECT_ROOT, Config
from backend.datagen import DEMO_PASSWORD, bulk_load, generate, rows
from backend.datagen.command import main
from backend.db import create_db_engine
from backend.models import ORDER_STATUSES
from backend.migrations.alembic_api import upgrade
from backend.text import normalize_email, slugify

LOCALES = ("en", "de", "fr", "es", "ja")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
TABLES = ("users", "products", "product_translations", "orders", "order_items")


@pytest.fixture(params=["sqlite", "postgresql"])
def shop_url(request, tmp_path) -> str:
    """A database of each kind, migrated to head."""
    url = f"sqlite:///{tmp_path / 'shop.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    return url


@pytest.fixture
def sqlite_shop(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade(url)
    return url


@pytest.fixture
def pg_shop(pg_url) -> str:
    upgrade(pg_url)
    return pg_url


@pytest.fixture(autouse=True)
def _default_locales(monkeypatch):
    for name in ("SUPPORTED_LOCALES", "DEFAULT_LOCALE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def query(url: str, sql: str, **params) -> list[tuple]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params):
    return query(url, sql, **params)[0][0]


def counts(url: str) -> dict[str, int]:
    return {table: scalar(url, f"SELECT COUNT(*) FROM {table}") for table in TABLES}


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_consistent(url: str, locales=LOCALES) -> None:
    """The invariants every generated database satisfies."""
    per_product = query(url, "SELECT product_id, COUNT(DISTINCT locale) FROM product_translations GROUP BY product_id")
    assert per_product and all(n == len(locales) for _, n in per_product)
    assert scalar(url, "SELECT COUNT(*) FROM products") == len(per_product)
    assert {row[0] for row in query(url, "SELECT DISTINCT locale FROM product_translations")} == set(locales)
    assert scalar(url, "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS "
                       "(SELECT 1 FROM order_items i WHERE i.order_id = o.id)") == 0
    assert scalar(url, "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM order_items GROUP BY order_id) AS t") <= 5
    assert scalar(url, "SELECT COUNT(*) FROM order_items i LEFT JOIN products p ON p.id = i.product_id "
                       "WHERE p.id IS NULL OR p.price_cents <> i.unit_price_cents") == 0
    assert scalar(url, "SELECT COUNT(*) FROM order_items WHERE quantity NOT BETWEEN 1 AND 4") == 0
    assert scalar(url, "SELECT COUNT(*) FROM (SELECT order_id, product_id FROM order_items "
                       "GROUP BY order_id, product_id HAVING COUNT(*) > 1) AS t") == 0
    assert {row[0] for row in query(url, "SELECT DISTINCT status FROM orders")} <= set(ORDER_STATUSES)
    assert {row[0] for row in query(url, "SELECT DISTINCT preferred_locale FROM users")} <= set(locales)
    assert scalar(url, "SELECT COUNT(*) FROM orders o WHERE total_cents <> "
                       "(SELECT SUM(quantity * unit_price_cents) FROM order_items i WHERE i.order_id = o.id)") == 0
    for product_id, locale, name, slug in query(url, "SELECT product_id, locale, name, slug FROM product_translations"):
        assert slug == f"{slugify(name, locale)}--{product_id}"  # "--": never a slug the app picks
    for email, normalized in query(url, "SELECT email, email_normalized FROM users"):
        assert normalized == normalize_email(email)


# --- what it generates ----------------------------------------------------------

def test_generates_the_requested_rows_consistently(shop_url):
    result = run_cli("--database-url", shop_url, "--users", "30", "--products", "20", "--orders", "150",
                     "--seed", "1", "--batch-size", "7")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"generated 30 users, 20 products \(100 translations\), 150 orders "
                        r"\(\d+ items\) in \d+\.\d\d s\n", result.output)
    found = counts(shop_url)
    assert found["users"] == 30 and found["products"] == 20 and found["product_translations"] == 100
    assert found["orders"] == 150 and 150 <= found["order_items"] <= 750
    assert_consistent(shop_url)


def test_names_look_like_products_in_each_language(sqlite_shop):
    generate(sqlite_shop, users=5, products=40, orders=0, seed=3)
    names = dict(((pid, locale), name) for pid, locale, name in
                 query(sqlite_shop, "SELECT product_id, locale, name FROM product_translations"))
    japanese = [name for (_, locale), name in names.items() if locale == "ja"]
    assert all(JAPANESE.search(name) for name in japanese)
    assert all(name.isascii() for (_, locale), name in names.items() if locale == "en")
    assert any(" aus " in name for (_, locale), name in names.items() if locale == "de")
    assert len({name for (_, locale), name in names.items() if locale == "en"}) > 20  # varied
    assert all(names[pid, "en"] != names[pid, "fr"] for pid in range(1, 41))  # translated, not copied


def test_users_share_one_password_hash_and_have_unique_emails(sqlite_shop):
    generate(sqlite_shop, users=50, products=1, orders=0, seed=2)
    hashes = {row[0] for row in query(sqlite_shop, "SELECT password_hash FROM users")}
    assert len(hashes) == 1 and check_password_hash(hashes.pop(), DEMO_PASSWORD)
    emails = [row[0] for row in query(sqlite_shop, "SELECT email FROM users")]
    assert len(set(emails)) == 50 and all(re.fullmatch(r"[a-z._]+\d+@example\.(com|org|net)", e) for e in emails)


def test_orders_spread_over_two_years_with_statuses_by_age(pg_shop):
    generate(pg_shop, users=10, products=10, orders=2_000, seed=4)
    oldest, newest = query(pg_shop, "SELECT EXTRACT(EPOCH FROM MIN(created_at)), "
                                    "EXTRACT(EPOCH FROM MAX(created_at)) FROM orders")[0]
    now = time.time()
    assert now - rows.ORDER_SPAN - 60 <= float(oldest) and float(newest) <= now + 1
    assert now - float(newest) < 30 * 86_400
    old = {row[0] for row in query(pg_shop, "SELECT DISTINCT status FROM orders "
                                            "WHERE created_at < now() - interval '30 days'")}
    assert old <= {"delivered", "cancelled"}


def test_other_locales_fall_back_to_tagged_english(sqlite_shop):
    generate(sqlite_shop, users=3, products=4, orders=5, seed=5, locales=("en", "pt-BR", "de-AT"))
    names = dict(((pid, locale), name) for pid, locale, name in
                 query(sqlite_shop, "SELECT product_id, locale, name FROM product_translations"))
    assert names[1, "pt-BR"] == f"{names[1, 'en']} (pt-BR)"
    assert " aus " in names[1, "de-AT"]  # a regional variant uses its language
    assert_consistent(sqlite_shop, locales=("en", "pt-BR", "de-AT"))


def test_foundation_schema_without_later_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001_shop_schema")
    generate(url, users=5, products=5, orders=20, seed=6)
    assert counts(url)["orders"] == 20


# --- determinism and appending ----------------------------------------------------

def dump(url: str) -> dict[str, list[tuple]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: [tuple(value for key, value in row._mapping.items() if key != "password_hash")
                        for row in connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
                for table in TABLES
            }
    finally:
        engine.dispose()


def test_same_seed_on_a_fresh_database_gives_the_same_data(tmp_path):
    urls = [f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db", "c.db")]
    for url in urls:
        upgrade(url)
    options = dict(users=20, products=15, orders=100, now=1_750_000_000.0)
    generate(urls[0], seed=42, **options)
    generate(urls[1], seed=42, **options)
    generate(urls[2], seed=43, **options)
    assert dump(urls[0]) == dump(urls[1])
    assert dump(urls[0])["order_items"] != dump(urls[2])["order_items"]


def test_same_seed_through_the_cli_on_postgresql(pg_url, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    for url in (pg_url, other):
        upgrade(url)
        assert run_cli("--database-url", url, "--users", "8", "--products", "6", "--orders", "40",
                       "--seed", "9").exit_code == 0
    # Same choices on both databases (timestamps are "now"-relative and stored differently).
    sql = "SELECT o.id, o.user_id, o.status, i.product_id, i.quantity FROM orders o " \
          "JOIN order_items i ON i.order_id = o.id ORDER BY i.id"
    assert query(pg_url, sql) == query(other, sql)


def test_running_twice_appends(shop_url):
    for seed in (11, 12):
        generate(shop_url, users=10, products=6, orders=30, seed=seed)
    assert counts(shop_url)["users"] == 20 and counts(shop_url)["orders"] == 60
    assert_consistent(shop_url)
    # The second run's orders draw on the users and products of both runs.
    assert scalar(shop_url, "SELECT COUNT(*) FROM orders WHERE id > 30 AND user_id <= 10") > 0
    assert scalar(shop_url, "SELECT COUNT(*) FROM order_items WHERE order_id > 30 AND product_id <= 6") > 0


def test_app_inserts_after_a_run_get_fresh_ids(pg_shop):
    generate(pg_shop, users=10, products=3, orders=12, seed=1)
    engine = create_db_engine(pg_shop)
    try:
        with engine.begin() as connection:
            new_id = connection.execute(sa.text(
                "INSERT INTO users (email, email_normalized, password_hash) "
                "VALUES ('new@example.com', 'new@example.com', 'x') RETURNING id")).scalar_one()
    finally:
        engine.dispose()
    assert new_id == 11


# --- PostgreSQL bulk-load mode -------------------------------------------------------

CATALOG = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid::regclass::text IN ('users', 'products', 'product_translations', 'orders', 'order_items')
UNION ALL
SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
ORDER BY 1, 2, 3
"""


def test_bulk_load_restores_keys_and_indexes(pg_shop, monkeypatch):
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 10)
    statements = []
    real_run = bulk_load._run
    monkeypatch.setattr(bulk_load, "_run", lambda connection, sql: (statements.extend(sql), real_run(connection, sql)))
    before = query(pg_shop, CATALOG)
    generate(pg_shop, users=20, products=12, orders=200, seed=8)
    assert any(sql.startswith("ALTER TABLE order_items DROP CONSTRAINT") for sql in statements)
    assert any(sql.startswith("DROP INDEX ix_orders_user_id") for sql in statements)
    assert query(pg_shop, CATALOG) == before
    assert_consistent(pg_shop)


def test_bulk_load_only_for_large_loads():
    planned = {"users": 200, "orders": 1_000_000, "order_items": 2_500_000}
    assert bulk_load.tables_worth_it(planned, {}) == ["orders", "order_items"]
    assert bulk_load.tables_worth_it(planned, {"orders": 2_000_000, "order_items": 50_000_000}) == ["orders"]


def test_a_failed_run_leaves_nothing_behind(pg_shop, monkeypatch):
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 10)
    generate(pg_shop, users=5, products=5, orders=5, seed=1)
    before, catalog = counts(pg_shop), query(pg_shop, CATALOG)

    def broken_order_chunks(*args, **kwargs):
        yield from []
        raise RuntimeError("generator failed")

    monkeypatch.setattr(rows, "order_chunks", broken_order_chunks)
    with pytest.raises(RuntimeError, match="generator failed"):
        generate(pg_shop, users=50, products=20, orders=100)
    assert counts(pg_shop) == before and query(pg_shop, CATALOG) == catalog


# --- errors ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_unmigrated_database_is_one_clear_line(kind, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'empty.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    result = run_cli("--database-url", url, "--orders", "5")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "alembic upgrade head" in result.output
    assert "Traceback" not in result.output


def test_unknown_required_column_is_named(pg_shop):
    engine = create_db_engine(pg_shop)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL"))
    engine.dispose()
    result = run_cli("--database-url", pg_shop, "--orders", "5")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "orders.channel" in result.output and "NOT NULL" in result.output
    assert counts(pg_shop)["users"] == 0


def test_unknown_columns_with_defaults_or_nullable_are_left_alone(pg_shop):
    engine = create_db_engine(pg_shop)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'web'"))
        connection.execute(sa.text("ALTER TABLE users ADD COLUMN nickname TEXT"))
    engine.dispose()
    assert run_cli("--database-url", pg_shop, "--users", "3", "--products", "2", "--orders", "5").exit_code == 0
    assert query(pg_shop, "SELECT DISTINCT channel FROM orders") == [("web",)]


@pytest.mark.parametrize("args", [["--users", "-1"], ["--orders", "-5"], ["--products", "-2"], ["--batch-size", "0"],
                                  ["--orders", "99999999999999999999999"], ["--users", "1000000001"]])
def test_bad_option_values_are_usage_errors(args, sqlite_shop):
    result = run_cli("--database-url", sqlite_shop, *args)
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_orders_need_users_and_products(sqlite_shop):
    result = run_cli("--database-url", sqlite_shop, "--users", "0", "--products", "0", "--orders", "3")
    assert result.exit_code == 1 and "--users" in result.output


def test_unreachable_database_is_one_clear_line():
    result = run_cli("--database-url", "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
    assert result.exit_code == 1 and result.output.startswith("Error: cannot connect to")
    assert result.output.count("\n") == 1


def test_invalid_database_url_is_one_clear_line():
    result = run_cli("--database-url", "not a url")
    assert result.exit_code == 1 and result.output.startswith("Error: invalid database URL")


def test_database_url_from_the_environment(sqlite_shop, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_shop)
    monkeypatch.setenv("SUPPORTED_LOCALES", "en,ja")
    assert run_cli("--users", "2", "--products", "3", "--orders", "4").exit_code == 0
    assert counts(sqlite_shop)["product_translations"] == 6


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "backend.datagen", "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--batch-size" in result.stdout
    assert "python -m backend.datagen" in result.stdout


# --- Flask CLI ---------------------------------------------------------------------

def test_flask_seed_command_uses_the_app_configuration(sqlite_shop):
    app = create_app(Config(database_url=sqlite_shop, supported_locales=("en", "ja"), default_locale="en"))
    result = app.test_cli_runner().invoke(args=["seed", "--users", "4", "--products", "3", "--orders", "10",
                                                "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("generated 4 users, 3 products (6 translations), 10 orders")
    assert_consistent(sqlite_shop, locales=("en", "ja"))


def test_flask_seed_command_reports_errors_like_the_script(tmp_path, shop_url):
    app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    runner = app.test_cli_runner()
    unmigrated = runner.invoke(args=["seed"])
    assert unmigrated.exit_code == 1 and "alembic upgrade head" in unmigrated.output
    assert runner.invoke(args=["seed", "--orders", "-1"]).exit_code == 2
    # --database-url overrides the app's database.
    assert runner.invoke(args=["seed", "--database-url", shop_url, "--orders", "3"]).exit_code == 0
    assert counts(shop_url)["orders"] == 3


def test_orders_only_take_existing_products_in_their_currency(sqlite_shop):
    engine = create_db_engine(sqlite_shop)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users (id, email, email_normalized, preferred_locale, password_hash) "
                                   "VALUES (1, 'a@example.com', 'a@example.com', 'en', 'x')"))
        connection.execute(sa.text("INSERT INTO products (id, owner_id, sku, price_cents, currency, stock) "
                                   "VALUES (1, 1, 'EUR-1', 100, 'EUR', 10), (2, 1, 'USD-1', 200, 'USD', 10)"))
    engine.dispose()
    assert run_cli("--database-url", sqlite_shop, "--users", "0", "--products", "0", "--orders", "200").exit_code == 0
    assert query(sqlite_shop, "SELECT DISTINCT o.currency, p.currency FROM order_items i "
                              "JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id") == [("EUR", "EUR")]
