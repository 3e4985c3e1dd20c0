"""Per-row backfills write a batch's rows with one statement, and pick slugs for a
whole batch with a few queries: the round trips no longer grow with the rows."""
from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from backend.backfill.bulk import write_rows
from backend.shipped_backfills.translation_slugs import TranslationSlugs
from backend.shipped_backfills.users_email_normalized import UsersEmailNormalized
from backend.backfill.keys import KeyRange
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade
from backend.slugs import SuffixFloors, free_slugs
from backend.text import normalize_email

things = sa.table("things", sa.column("id", sa.BigInteger), sa.column("label", sa.String(10)),
                  sa.column("amount", sa.Integer), sa.column("seen_at", sa.DateTime(timezone=True)))


@pytest.fixture
def engine(db_url):
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@contextlib.contextmanager
def statements(engine):
    """The SQL statements the engine sends while the block runs."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def make_things(engine, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE things (id BIGINT PRIMARY KEY, label VARCHAR(10), amount INTEGER, "
                                   "seen_at TIMESTAMP WITH TIME ZONE)"))
        connection.execute(sa.text("INSERT INTO things (id, label, amount) VALUES (:id, 'old', 1)"),
                           [{"id": i} for i in range(1, count + 1)])


def test_one_statement_writes_every_row_with_its_own_values(engine):
    make_things(engine, 300)
    tricky = ["it's", "50% off", "naïve", "a\\b", None, "日本"]
    updates = [(i, {"label": tricky[i % len(tricky)], "amount": None if i % 7 == 0 else i * 10})
               for i in range(1, 301)]
    with engine.begin() as connection, statements(engine) as sent:
        assert write_rows(connection, things, "id", updates) == 300
    writes = [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
    if engine.dialect.name == "postgresql":
        assert len(writes) == 1  # not one round trip per row
    with engine.connect() as connection:
        rows = {r.id: (r.label, r.amount) for r in connection.execute(sa.select(things))}
    assert rows == {i: (values["label"], values["amount"]) for i, values in updates}


def test_rows_setting_different_columns_keep_the_others(engine):
    make_things(engine, 3)
    with engine.begin() as connection:
        write_rows(connection, things, "id", [(1, {"label": "a"}), (2, {"amount": 5}), (3, {"label": "c"})])
    with engine.connect() as connection:
        rows = {r.id: (r.label, r.amount) for r in connection.execute(sa.select(things))}
    assert rows == {1: ("a", 1), 2: ("old", 5), 3: ("c", 1)}


def test_a_value_too_long_fails_instead_of_being_cut(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    make_things(engine, 2)
    with pytest.raises(sa.exc.DataError), engine.begin() as connection:
        write_rows(connection, things, "id", [(1, {"label": "short"}), (2, {"label": "x" * 11})])
    with engine.connect() as connection:  # nothing half-written
        assert set(connection.execute(sa.select(things.c.label)).scalars()) == {"old"}


# --- the shipped per-row backfills ---------------------------------------------------


def add_translations(engine, names: list[tuple[str, str]], taken: list[tuple[str, str]] = ()) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users (id, email, password_hash) VALUES (1, 'o@example.com', 'x')"))
        total = len(names) + len(taken)
        connection.execute(sa.text(
            "INSERT INTO products (id, owner_id, sku, price_cents, currency, stock) VALUES (:id, 1, :sku, 100, 'EUR', 1)"),
            [{"id": i, "sku": f"S-{i}"} for i in range(1, total + 1)])
        rows = [{"product": i + 1, "locale": locale, "name": name, "slug": slug}
                for i, (locale, name, slug) in enumerate([(l, n, None) for l, n in names]
                                                          + [(l, s, s) for l, s in taken])]
        connection.execute(sa.text(
            "INSERT INTO product_translations (product_id, locale, name, description, slug) "
            "VALUES (:product, :locale, :name, '', :slug)"), rows)


def test_free_slugs_for_a_batch_sharing_a_much_taken_base_take_a_few_queries(db_url, engine):
    upgrade(db_url, "0004_translation_slugs")
    taken = [("en", "red-shoe")] + [("en", f"red-shoe-{n}") for n in range(2, 301)] + [("en", "shoe-2")]
    add_translations(engine, [], taken)
    wanted = [("en", "red-shoe")] * 5 + [("de", "red-shoe"), ("en", "shoe"), ("en", "shoe"), ("en", "shoe-2")]
    with engine.begin() as connection, statements(engine) as sent:
        slugs = free_slugs(connection, wanted)
    assert slugs[:5] == [f"red-shoe-{n}" for n in range(301, 306)]
    assert slugs[5] == "red-shoe"  # another locale
    # "shoe-2" is taken; "shoe-3" is this batch's own second "shoe" unless the literal
    # base "shoe-2" got it first: either way all distinct and none taken.
    assert slugs[6] == "shoe" and len(set(slugs[6:])) == 3 and "shoe-2" not in slugs
    assert len(set(slugs)) == len(slugs)
    if engine.dialect.name == "postgresql":
        assert len(sent) <= 6, sent  # rounds, not a query per row or per candidate page


def test_translation_slugs_batch_writes_once_and_matches_the_apps_choice(db_url, engine):
    upgrade(db_url, "0004_translation_slugs")
    add_translations(engine, [("en", "Red Shoe")] * 3 + [("de", "Rote Schuhe"), ("en", "Blue Hat")])
    backfill = TranslationSlugs()
    with engine.begin() as connection, statements(engine) as sent:
        changed = backfill.process(connection, KeyRange(None, 10**9, start=0))
    assert changed == 5
    with engine.connect() as connection:
        slugs = dict(connection.execute(sa.text("SELECT id, slug FROM product_translations ORDER BY id")).all())
    assert list(slugs.values()) == ["red-shoe", "red-shoe-2", "red-shoe-3", "rote-schuhe", "blue-hat"]
    if engine.dialect.name == "postgresql":
        assert sum(s.lstrip().upper().startswith("UPDATE") for s in sent) == 1


def test_users_email_normalized_batch_writes_once(db_url, engine):
    upgrade(db_url, "0005_users_email_normalized")
    emails = ["Jürgen@Bücher.DE", "ANNA@example.com", "bob@EXAMPLE.com"]
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users (email, password_hash) VALUES (:e, 'x')"),
                           [{"e": e} for e in emails])
    with engine.begin() as connection, statements(engine) as sent:
        assert UsersEmailNormalized().process(connection, KeyRange(None, 10**9, start=0)) == 3
    with engine.connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT email, email_normalized FROM users")).all())
    assert stored == {e: normalize_email(e) for e in emails}
    if engine.dialect.name == "postgresql":
        assert sum(s.lstrip().upper().startswith("UPDATE") for s in sent) == 1


def test_per_row_backfills_adapt_their_batch_size():
    assert TranslationSlugs.target_batch_seconds == 0.1
    assert UsersEmailNormalized.target_batch_seconds == 0.1


def test_a_later_batch_starts_at_the_suffixes_it_knows_are_taken(db_url, engine):
    """Re-reading a base's taken suffixes from -2 in every batch made rows cost more as
    the table filled; the process remembers where each base's free suffixes start."""
    upgrade(db_url, "0004_translation_slugs")
    add_translations(engine, [], [("en", "red-shoe")] + [("en", f"red-shoe-{n}") for n in range(2, 301)])
    floors = SuffixFloors()
    with engine.begin() as connection:
        assert free_slugs(connection, [("en", "red-shoe")], floors) == ["red-shoe-301"]
    assert floors[("en", "red-shoe")] == 302
    with engine.begin() as connection, statements(engine) as sent:
        # red-shoe-302 was taken meanwhile by someone else: still checked, still skipped
        connection.execute(sa.text("UPDATE product_translations SET slug = 'red-shoe-302' WHERE slug = 'red-shoe-2'"))
        assert free_slugs(connection, [("en", "red-shoe"), ("en", "red-shoe")], floors) == ["red-shoe-303",
                                                                                             "red-shoe-304"]
    if engine.dialect.name == "postgresql":
        assert len(sent) <= 3  # the UPDATE above and two rounds, not a walk from -2 (six)


def test_the_bulk_write_joins_only_the_batchs_key_range(pg_url):
    """Without the batch's bounds PostgreSQL hashed the whole table for every batch's
    UPDATE ... FROM (VALUES ...): a cost that grew with the table."""
    engine = create_db_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE things (id BIGINT PRIMARY KEY, label VARCHAR(10), amount INTEGER, "
                                   "seen_at TIMESTAMP WITH TIME ZONE)"))
        connection.execute(sa.text("INSERT INTO things (id, label, amount) SELECT g, 'old', 1 "
                                   "FROM generate_series(1, 100000) g"))
        connection.execute(sa.text("ANALYZE things"))
    updates = [(i, {"label": "new"}) for i in range(20001, 30001)]
    plans = {}
    for bounded in (False, True):
        with engine.begin() as connection, statements(engine) as sent:
            write_rows(connection, things, "id", updates, bounds=(20001, 30000) if bounded else None)
            plans[bounded] = "\n".join(connection.exec_driver_sql("EXPLAIN " + sent[-1]).scalars())
    engine.dispose()
    assert "Seq Scan on things" in plans[False]  # what the bounds are for
    assert "Seq Scan on things" not in plans[True], plans[True]


def test_what_translation_slugs_learns_is_kept_per_run_and_database(db_url, engine):
    """A worker may run the backfill for several databases, or a new run after a
    downgrade emptied the slugs: a floor learnt elsewhere must not skip free slugs."""
    upgrade(db_url, "0004_translation_slugs")
    add_translations(engine, [("en", "Red Shoe")] * 2)
    backfill = TranslationSlugs()
    with engine.begin() as connection:
        connection.info["backfill_run_id"] = 1
        backfill.process(connection, KeyRange(None, 10**9, start=0))
        connection.execute(sa.text("UPDATE product_translations SET slug = NULL"))  # a downgrade, say
        connection.info["backfill_run_id"] = 2
        backfill.process(connection, KeyRange(None, 10**9, start=0))
        slugs = connection.execute(sa.text("SELECT slug FROM product_translations ORDER BY id")).scalars().all()
    assert slugs == ["red-shoe", "red-shoe-2"]
