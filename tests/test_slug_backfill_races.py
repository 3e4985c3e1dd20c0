"""translation_slugs writes its proposed slugs first and checks them after, under the
locales' slug locks: a slug someone else took (before the batch, between its write and
its check, or in another lane) moves the batch's row, never the other one, and no
two rows of a locale end with one slug, even before 0007 makes (locale, slug) unique."""
from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from backend.backfill.inprocess import run_in_process
from backend.backfill.keys import KeyRange
from backend.backfill.model import RunStatus
from backend.backfill.registry import load_catalog
from backend.backfill.service import BackfillService
from backend.backfill.settings import EngineSettings
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from backend.shipped_backfills import translation_slugs
from backend.shipped_backfills.translation_slugs import TranslationSlugs
from backend.slugs import SuffixFloors, free_slug, lock_locales
from backend.text import slugify
from tests.backfill_helpers import FAST_SETTINGS
from tests.test_row_backfill_bulk import statements

EXPAND = "0004_translation_slugs"  # slug column, plain index: nothing but the locks keep slugs apart


def shop_at_expand(url: str):
    upgrade(url, EXPAND)
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users (id, email, password_hash) VALUES (1, 'o@example.com', 'x')"))
    return engine


@pytest.fixture
def engine(db_url):
    engine = shop_at_expand(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url):
    """PostgreSQL only: the races need two writers at once (SQLite has one)."""
    engine = shop_at_expand(pg_url)
    yield engine
    engine.dispose()


def add_product(connection, product_id: int, translations: list[tuple[str, str, str | None]]) -> None:
    """A product and its (locale, name, slug) translations."""
    connection.execute(sa.text("INSERT INTO products (id, owner_id, sku, price_cents, currency, stock) "
                               "VALUES (:id, 1, :sku, 100, 'EUR', 1)"), {"id": product_id, "sku": f"S-{product_id}"})
    connection.execute(sa.text(
        "INSERT INTO product_translations (product_id, locale, name, description, slug) "
        "VALUES (:product, :locale, :name, '', :slug)"),
        [{"product": product_id, "locale": locale, "name": name, "slug": slug} for locale, name, slug in translations])


def app_adds(engine, product_id: int, locale: str, name: str) -> str:
    """What the shop does for a new translation (backend.shop.catalog): lock, pick, insert, commit."""
    with engine.begin() as connection:
        lock_locales(connection, [locale])
        slug = free_slug(connection, locale, name)
        add_product(connection, product_id, [(locale, name, slug)])
    return slug


def slugs_by_name(engine) -> dict[tuple[int, str], str]:
    with engine.connect() as connection:
        return {(product, locale): slug for product, locale, slug in connection.execute(sa.text(
            "SELECT product_id, locale, slug FROM product_translations"))}


def test_a_slug_taken_before_the_batch_moves_the_batchs_row(engine):
    with engine.begin() as connection:
        add_product(connection, 1, [("en", "Red Shoe", "red-shoe")])  # the app's, during the expand phase
        add_product(connection, 2, [("en", "Red Shoe", None), ("de", "Red Shoe", None)])
    with engine.begin() as connection, statements(engine) as sent:
        assert TranslationSlugs().process(connection, KeyRange(None, 10**9, start=0)) == 2
    assert slugs_by_name(engine) == {(1, "en"): "red-shoe", (2, "en"): "red-shoe-2", (2, "de"): "red-shoe"}
    if engine.dialect.name == "postgresql":  # the bulk write, then the clashing row again
        assert sum(s.lstrip().upper().startswith("UPDATE") for s in sent) == 2


def test_the_app_taking_the_slug_between_the_write_and_the_check(pg_engine, monkeypatch):
    """Our written slug is not committed yet, so the app (which picks under the lock)
    cannot see it and takes it too; our check, under the lock after the app's commit,
    sees the app's row and moves ours."""
    engine = pg_engine
    with engine.begin() as connection:
        add_product(connection, 1, [("en", "Blue Hat", None)])
    real_lock = translation_slugs.lock_locales

    def app_first(connection, locales):
        app_slug.append(app_adds(engine, 2, "en", "Blue Hat"))
        real_lock(connection, locales)

    app_slug: list[str] = []
    monkeypatch.setattr(translation_slugs, "lock_locales", app_first)
    with engine.begin() as connection:
        TranslationSlugs().process(connection, KeyRange(None, 10**9, start=0))
    assert app_slug == ["blue-hat"]
    assert slugs_by_name(engine) == {(1, "en"): "blue-hat-2", (2, "en"): "blue-hat"}


def test_the_app_waits_for_the_batchs_check_and_commit_and_then_sees_its_slug(pg_engine):
    engine = pg_engine
    with engine.begin() as connection:
        add_product(connection, 1, [("en", "Green Cup", None)])
    picked: list[str] = []
    app = threading.Thread(target=lambda: picked.append(app_adds(engine, 2, "en", "Green Cup")))
    with engine.begin() as connection:
        TranslationSlugs().process(connection, KeyRange(None, 10**9, start=0))  # holds the en lock now
        app.start()
        app.join(0.5)
        assert app.is_alive() and not picked  # it waits for our commit
    app.join(10)
    assert picked == ["green-cup-2"]
    assert slugs_by_name(engine) == {(1, "en"): "green-cup", (2, "en"): "green-cup-2"}


def test_lanes_of_one_process_never_propose_the_same_slug():
    floors = SuffixFloors()
    wanted = [("en", "shoe")] * 50 + [("en", "shoe-3")] * 5 + [("de", "shoe")] * 10
    proposed: list[list[str]] = []
    lanes = [threading.Thread(target=lambda: proposed.append(floors.propose(wanted))) for _ in range(4)]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    per_locale = Counter((locale, slug) for batch in proposed for (locale, _), slug in zip(wanted, batch))
    assert len(per_locale) == 4 * len(wanted)  # no (locale, slug) proposed twice


def test_two_lanes_and_the_app_at_once_leave_every_slug_unique(pg_engine):
    """The whole run in two lanes (max_parallel = 2) over names that share a few bases,
    while the app adds translations with the same names: every row gets a slug, each
    its name's base or base-n, and no locale holds one twice."""
    engine = pg_engine
    names = [f"Lamp {n % 12}" if n % 3 else "Lamp" for n in range(40)]
    with engine.begin() as connection:
        for product in range(1, 1201):
            add_product(connection, product, [("en", random.choice(names), None), ("de", random.choice(names), None)])
        connection.execute(sa.text("UPDATE backfill_runs SET batch_size = 40 WHERE name = 'translation_slugs'"))
        run_id = connection.execute(sa.text("SELECT id FROM backfill_runs WHERE name = 'translation_slugs'")).scalar()
    service = BackfillService(engine, load_catalog(), EngineSettings(**{**FAST_SETTINGS.__dict__, "inprocess_lanes": 2}))
    stop = threading.Event()
    added: list[str] = []

    def app():
        product = 5000
        while not stop.is_set():
            product += 1
            added.append(app_adds(engine, product, random.choice(["en", "de"]), random.choice(names)))

    shop = threading.Thread(target=app)
    shop.start()
    try:
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    finally:
        stop.set()
        shop.join(30)
    assert added  # the app wrote while the run went
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT locale, name, slug FROM product_translations")).all()
        lanes = connection.execute(sa.text("SELECT max_parallel FROM backfill_runs WHERE id = :id"), {"id": run_id}).scalar()
    assert lanes == 2
    assert all(slug is not None for _, _, slug in rows)
    assert [key for key, n in Counter((locale, slug) for locale, _, slug in rows).items() if n > 1] == []
    for locale, name, slug in rows:
        base = slugify(name, locale)
        assert slug == base or (slug.startswith(base + "-") and int(slug[len(base) + 1:]) >= 2), (name, slug)


def test_two_processes_batches_at_once_each_with_its_own_floors(pg_engine):
    """Two Celery workers do not share what they handed out: their batches propose the
    same slugs for the same bases, and whichever checks second moves its rows."""
    engine = pg_engine
    with engine.begin() as connection:
        for product in range(1, 201):
            add_product(connection, product, [("en", "Desk Lamp", None), ("de", f"Lampe {product % 3}", None)])
    split = 200  # translation ids 1..400: two ranges, one per worker
    workers = [TranslationSlugs(), TranslationSlugs()]  # one process each: separate floors
    ready = threading.Barrier(2)
    errors: list[BaseException] = []

    def batch(worker: TranslationSlugs, key_range: KeyRange) -> None:
        try:
            with engine.begin() as connection:
                ready.wait(5)
                worker.process(connection, key_range)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=batch, args=(workers[0], KeyRange(None, split, start=0))),
               threading.Thread(target=batch, args=(workers[1], KeyRange(split, 10**9, start=0)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT locale, slug FROM product_translations")).all()
    assert all(slug is not None for _, slug in rows)
    assert len(set(rows)) == len(rows) == 400
    assert {slug for locale, slug in rows if locale == "en"} == {"desk-lamp"} | {f"desk-lamp-{n}" for n in range(2, 201)}


def test_the_slug_queries_probe_the_index_without_statistics(pg_engine):
    """Right after 0004 adds `slug` PostgreSQL has no statistics for it; joined with the
    pairs, the slug queries were planned as a merge of the whole (locale, slug) index
    per batch (a cost growing with the table). Each pair must be one index probe."""
    from backend.slugs import _taken, duplicated

    engine = pg_engine
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO products (id, owner_id, sku, price_cents, currency, stock) "
                                   "SELECT g, 1, 'S-' || g, 100, 'EUR', 1 FROM generate_series(1, 30000) g"))
        connection.execute(sa.text(
            "INSERT INTO product_translations (product_id, locale, name, description, slug) "
            "SELECT g, l, 'Name ' || g, '', CASE WHEN g <= 20000 THEN 'name-' || g END "
            "FROM generate_series(1, 30000) g, unnest(ARRAY['en', 'de', 'fr', 'es', 'ja']) l"))
    pairs = [("en", f"name-{n}") for n in range(19001, 20501)]  # 1,000 taken, 500 free
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, *_args):
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.begin() as connection:
            assert len(_taken(connection, pairs)) == 1000
            assert duplicated(connection, pairs) == set()
            plans = ["\n".join(connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
                     for statement, parameters in sent[-2:]]
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    for plan in plans:
        assert "Index Only Scan using ix_product_translations_locale_slug" in plan or \
               "Index Scan using ix_product_translations_locale_slug" in plan, plan
        assert not any(node in plan for node in ("Merge Join", "Hash Join", "Seq Scan on product_translations")), plan
