"""Column type changes (backend.migrations.type_change) on PostgreSQL: an integer
primary key referenced by a foreign key becomes bigint while other connections
insert and update, and the whole change can be undone step by step."""
from __future__ import annotations

import contextlib
import random
import threading
import time

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext

from backend.backfill.inprocess import run_in_process
from backend.backfill.runs import latest_run
from backend.backfill.model import RunStatus
from backend.backfill.type_change import declare_type_change
from backend.db import create_db_engine
from backend.migrations import alembic_api
from backend.migrations.type_change import (cleanup_type_change, finish_type_change, start_type_change,
                                            undo_cleanup_type_change, undo_finish_type_change, undo_start_type_change)
from tests.backfill_helpers import make_service

pytestmark = pytest.mark.timeout(180)

NAMES = declare_type_change("tc_parents", "id", sa.BigInteger(), batch_size=250)
TYPES = dict(old_type=sa.Integer(), new_type=sa.BigInteger())
PARENTS, CHILDREN = 2000, 4000


@pytest.fixture
def engine(pg_url):
    alembic_api.upgrade(pg_url, "0002_backfill_state")
    engine = create_db_engine(pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("""
            CREATE TABLE tc_parents (id serial PRIMARY KEY, note text NOT NULL DEFAULT '', CHECK (id > 0));
            CREATE TABLE tc_children (id serial PRIMARY KEY, qty int NOT NULL DEFAULT 1,
                parent_id int NOT NULL CONSTRAINT fk_children_parent REFERENCES tc_parents (id) ON DELETE CASCADE);
            CREATE INDEX ix_tc_children_parent_id ON tc_children (parent_id);
            CREATE UNIQUE INDEX ix_tc_parents_id_note ON tc_parents (id, note);
            CREATE INDEX ix_tc_parents_recent_notes ON tc_parents (note) WHERE id > 1000;""")
        connection.exec_driver_sql(f"INSERT INTO tc_parents (note) SELECT 'p' || g FROM generate_series(1, {PARENTS}) g")
        connection.exec_driver_sql(f"INSERT INTO tc_children (parent_id) SELECT 1 + mod(g, {PARENTS}) "
                                   f"FROM generate_series(1, {CHILDREN}) g")
    yield engine
    engine.dispose()


@contextlib.contextmanager
def revision(engine):
    """Alembic's `op` as in a revision (env.py's context, so the helpers find the app's
    configuration), on a connection of its own."""
    config = alembic_api.alembic_config(engine.url.render_as_string(hide_password=False))
    with EnvironmentContext(config, alembic_api.script_directory()), engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"transaction_per_migration": True})
        with Operations.context(context):
            with context.begin_transaction(_per_migration=True):
                yield
            if connection.in_transaction():
                connection.commit()


def run_backfill(url: str, name: str) -> None:
    service = make_service(url)
    try:
        with service.engine.connect() as connection:
            run_id = latest_run(connection, name).id
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    finally:
        service.engine.dispose()


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql))]


def scalar(engine, sql: str):
    return rows(engine, sql)[0][0]


class Shop:
    """Threads with their own connections inserting parents and children and updating
    both (moving children between parents), each statement on its own, until stopped."""

    def __init__(self, engine, threads: int = 3):
        self.engine, self.stop, self.errors = engine, threading.Event(), []
        self.parents, self.children, self.lock = [], [], threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(seed,), daemon=True) for seed in range(threads)]

    def __enter__(self) -> "Shop":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def writes(self) -> int:
        with self.lock:
            return len(self.parents) + len(self.children)

    def _work(self, seed: int) -> None:
        rng = random.Random(seed)
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                while not self.stop.is_set():
                    parent = connection.execute(sa.text(
                        "INSERT INTO tc_parents (note) VALUES (:note) RETURNING id"), {"note": f"t{seed}"}).scalar_one()
                    child = connection.execute(sa.text(
                        "INSERT INTO tc_children (parent_id, qty) VALUES (:p, 2) RETURNING id"), {"p": parent}).scalar_one()
                    connection.execute(sa.text("UPDATE tc_parents SET note = note || '+' WHERE id = :id"),
                                       {"id": rng.randint(1, PARENTS)})
                    connection.execute(sa.text("UPDATE tc_children SET parent_id = :p, qty = qty + 1 WHERE id = :id"),
                                       {"p": rng.randint(1, PARENTS), "id": rng.randint(1, CHILDREN)})
                    with self.lock:
                        self.parents.append(parent)
                        self.children.append(child)
                    time.sleep(0.002)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(exc))

    def wait_for_writes(self, more: int) -> None:
        target = self.writes() + more
        deadline = time.monotonic() + 30
        while self.writes() < target and not self.errors:
            assert time.monotonic() < deadline, "the shop stopped writing"
            time.sleep(0.01)


def column_types(engine, table: str = "tc_parents") -> dict[str, str]:
    return dict(rows(engine, f"""SELECT column_name, data_type FROM information_schema.columns
                                 WHERE table_name = '{table}'"""))


def constraints(engine) -> dict[str, tuple]:
    return {name: (kind, definition, valid) for name, kind, definition, valid in rows(engine, """
        SELECT conname, contype, pg_get_constraintdef(oid), convalidated FROM pg_constraint
        WHERE conrelid IN ('tc_parents'::regclass, 'tc_children'::regclass)""")}


def sequence_owner_and_type(engine) -> tuple:
    return rows(engine, """SELECT pg_get_serial_sequence('tc_parents', 'id'), format_type(s.seqtypid, NULL)
                           FROM pg_sequence s WHERE s.seqrelid = 'tc_parents_id_seq'::regclass""")[0]


def assert_intact(engine, shop: Shop) -> None:
    """Every row the shop wrote is there, every child points at a parent."""
    ids = {row[0] for row in rows(engine, "SELECT id FROM tc_parents")}
    assert ids == set(range(1, PARENTS + 1)) | set(shop.parents)
    assert scalar(engine, "SELECT count(*) FROM tc_children") == CHILDREN + len(shop.children)
    assert scalar(engine, """SELECT count(*) FROM tc_children c
                             WHERE NOT EXISTS (SELECT 1 FROM tc_parents p WHERE p.id = c.parent_id)""") == 0


def test_an_integer_primary_key_referenced_by_a_foreign_key_becomes_bigint_under_traffic(engine, pg_url):
    before = constraints(engine)
    with Shop(engine) as shop:
        with revision(engine):
            start_type_change("tc_parents", "id", sa.BigInteger(), revision="expand")
        shop.wait_for_writes(50)
        run_backfill(pg_url, NAMES.backfill)
        assert scalar(engine, "SELECT count(*) FROM tc_parents WHERE id_new IS DISTINCT FROM id") == 0
        shop.wait_for_writes(50)
        with revision(engine):
            finish_type_change("tc_parents", "id", **TYPES, revision="contract")
        shop.wait_for_writes(100)  # writing on, to the bigint column now
    assert shop.errors == []
    assert_intact(engine, shop)

    assert column_types(engine) == {"id": "bigint", "id_old": "integer", "note": "text"}
    assert sequence_owner_and_type(engine) == ("public.tc_parents_id_seq", "bigint")
    assert scalar(engine, "SELECT column_default FROM information_schema.columns "
                          "WHERE table_name = 'tc_parents' AND column_name = 'id'") == \
        "nextval('tc_parents_id_seq'::regclass)"
    # The same constraints by name and definition, all validated; the foreign key and
    # the key now on the bigint column.
    assert constraints(engine) == before
    assert all(valid for _, _, valid in before.values())
    assert scalar(engine, """SELECT a.attname FROM pg_constraint c JOIN pg_attribute a
                             ON a.attrelid = c.confrelid AND a.attnum = c.confkey[1]
                             WHERE c.conname = 'fk_children_parent'""") == "id"
    assert rows(engine, """SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i
                           JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'tc_parents'::regclass
                           ORDER BY 1""") == [
        ("ix_tc_parents_id_note", "CREATE UNIQUE INDEX ix_tc_parents_id_note ON public.tc_parents USING btree (id, note)",
         True),
        ("ix_tc_parents_recent_notes",  # the column in the predicate only
         "CREATE INDEX ix_tc_parents_recent_notes ON public.tc_parents USING btree (note) WHERE (id > 1000)", True),
        ("tc_parents_pkey", "CREATE UNIQUE INDEX tc_parents_pkey ON public.tc_parents USING btree (id)", True)]
    # The integer column follows (for a downgrade) while values fit, and a value past
    # 2**31 is accepted: NULL in the old column, which no longer holds it.
    assert scalar(engine, "SELECT count(*) FROM tc_parents WHERE id_old IS DISTINCT FROM id") == 0
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO tc_parents (id, note) VALUES (3000000000, 'big')")
        connection.exec_driver_sql("INSERT INTO tc_children (parent_id) VALUES (1)")
        with pytest.raises(sa.exc.IntegrityError):
            with connection.begin_nested():
                connection.exec_driver_sql("INSERT INTO tc_children (parent_id) VALUES (-5)")
    assert rows(engine, "SELECT id_old FROM tc_parents WHERE id = 3000000000") == [(None,)]

    with revision(engine):
        cleanup_type_change("tc_parents", "id")
    assert column_types(engine) == {"id": "bigint", "note": "text"}
    assert scalar(engine, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tc_parents'::regclass "
                          "AND NOT tgisinternal") == 0
    assert sequence_owner_and_type(engine) == ("public.tc_parents_id_seq", "bigint")


def test_each_step_is_undone_and_a_retry_after_the_swap_does_nothing_twice(engine, pg_url):
    before = {"columns": column_types(engine), "constraints": constraints(engine),
              "sequence": sequence_owner_and_type(engine)}
    with revision(engine):
        start_type_change("tc_parents", "id", sa.BigInteger(), revision="expand")
    run_backfill(pg_url, NAMES.backfill)
    for _ in range(2):  # the lock-timeout retries run the whole revision again
        with revision(engine):
            finish_type_change("tc_parents", "id", **TYPES, revision="contract")
    with revision(engine):
        cleanup_type_change("tc_parents", "id")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO tc_parents (note) VALUES ('after')")

    with revision(engine):
        undo_cleanup_type_change("tc_parents", "id", sa.Integer())
    assert scalar(engine, "SELECT count(*) FROM tc_parents WHERE id_old IS DISTINCT FROM id") == 0
    with engine.begin() as connection:  # a value the integer column cannot hold stops the way back
        connection.exec_driver_sql("INSERT INTO tc_parents (id, note) VALUES (3000000000, 'big')")
    with pytest.raises(sa.exc.InternalError, match=r"type change of tc_parents.id: some rows hold values that "
                                                   r"integer cannot .* the downgrade would lose them"):
        with revision(engine):
            undo_finish_type_change("tc_parents", "id", **TYPES)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM tc_parents WHERE id = 3000000000")
    with revision(engine):
        undo_finish_type_change("tc_parents", "id", **TYPES)
    assert column_types(engine) == {**before["columns"], "id_new": "bigint"}
    assert constraints(engine) == before["constraints"]
    assert sequence_owner_and_type(engine) == before["sequence"]
    # The forward trigger is back: a new row gets its bigint copy.
    with engine.begin() as connection:
        new_id = connection.exec_driver_sql("INSERT INTO tc_parents (note) VALUES ('x') RETURNING id").scalar_one()
    assert rows(engine, f"SELECT id_new FROM tc_parents WHERE id = {new_id}") == [(new_id,)]

    with revision(engine):
        undo_start_type_change("tc_parents", "id")
    assert column_types(engine) == before["columns"]
    # The copy's run stays as history, no longer active (issue 21: downgrades keep it).
    assert scalar(engine, "SELECT count(*) FROM backfill_runs WHERE status IN "
                          "('pending', 'running', 'paused', 'waiting')") == 0
    assert scalar(engine, "SELECT count(*) FROM tc_parents") == PARENTS + 2
    assert scalar(engine, "SELECT count(*) FROM pg_proc WHERE proname = 'type_change_tc_parents_id'") == 0


def test_what_it_cannot_do_is_one_line_before_anything_changes(engine, pg_url):
    from alembic.util import CommandError

    with pytest.raises(CommandError, match=r"^type change of tc_children.qty: no backfill 'type_change:tc_children.qty'; "
                                           r"declare it with declare_type_change\('tc_children', 'qty', \.\.\.\)"):
        with revision(engine):
            start_type_change("tc_children", "qty", sa.BigInteger())
    with pytest.raises(CommandError, match="must be a lower-case unquoted identifier"):
        with revision(engine):
            start_type_change("tc_parents", "Id; DROP TABLE x", sa.BigInteger())

    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE INDEX ix_tc_parents_id_plus ON tc_parents ((id + 1))")
    with revision(engine):
        start_type_change("tc_parents", "id", sa.BigInteger(), revision="expand")
    run_backfill(pg_url, NAMES.backfill)
    with pytest.raises(CommandError, match=r"index ix_tc_parents_id_plus .* cannot be copied; drop it before"):
        with revision(engine):
            finish_type_change("tc_parents", "id", **TYPES, revision="contract")
    assert column_types(engine)["id"] == "integer"


def test_the_offline_swap_stops_when_an_index_has_no_copy(engine, pg_url):
    """Offline there is no catalog to build the index copies from: the swap block
    checks for them when the script runs, and changes nothing without them."""
    from backend.migrations import offline, type_change_sql

    with revision(engine):
        start_type_change("tc_parents", "id", sa.BigInteger(), revision="expand")
    run_backfill(pg_url, NAMES.backfill)
    with pytest.raises(sa.exc.InternalError, match=r"type change of tc_parents.id: index ix_tc_parents_id_note has no "
                                                   r"copy ix_tc_parents_id_note_tc on id_new: run this revision online"):
        with engine.begin() as connection:
            connection.execute(offline.verbatim(type_change_sql.swap_sql(NAMES, "id_new", "id_old")))
    assert column_types(engine) == {"id": "integer", "id_new": "bigint", "note": "text"}


def test_the_shipped_contract_waits_out_a_long_transaction_through_the_lock_retries(pg_url, monkeypatch):
    """0011 under env.py's lock_timeout and retries: a transaction holding a lock on
    order_items makes the swap time out (never queue the shop behind it); once it ends,
    the retried revision finishes what the first try started."""
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_MS", "100")
    monkeypatch.setenv("MIGRATION_LOCK_TRIES", "40")
    alembic_api.upgrade(pg_url, "0010_prices_bigint_expand")
    engine = create_db_engine(pg_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("""
                INSERT INTO users (id, email, email_normalized, preferred_locale, password_hash)
                    VALUES (1, 'a@example.com', 'a@example.com', 'en', 'x');
                INSERT INTO products (id, owner_id, sku, price_cents) VALUES (1, 1, 'SKU-1', 2147483000);
                INSERT INTO orders (id, user_id, total_cents) SELECT g, 1, 0 FROM generate_series(1, 50) g;
                INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
                    SELECT 1 + mod(g, 50), 1, 1, g FROM generate_series(1, 500) g;""")
        waits: list[str] = []
        holder = engine.connect()
        holder.exec_driver_sql("SELECT count(*) FROM order_items")  # ACCESS SHARE until the rollback
        releaser = threading.Timer(1.5, holder.rollback)
        releaser.start()
        try:
            alembic_api.upgrade(pg_url, "0011_prices_bigint_contract", on_lock_wait=waits.append)
        finally:
            releaser.join()
            holder.close()
        assert waits and all("lock wait:" in message for message in waits)
        assert alembic_api.current_revisions(pg_url) == ("0011_prices_bigint_contract",)
        assert column_types(engine, "order_items")["unit_price_cents"] == "bigint"
        assert column_types(engine, "products")["price_cents"] == "bigint"
        assert rows(engine, "SELECT count(*), sum(unit_price_cents), count(*) FILTER (WHERE unit_price_cents_old "
                            "IS DISTINCT FROM unit_price_cents) FROM order_items") == [(500, 125250, 0)]
        with engine.begin() as connection:  # past the integer range, as the change was for
            connection.exec_driver_sql("UPDATE products SET price_cents = 3000000000 WHERE id = 1")
        alembic_api.upgrade(pg_url, "head")
        assert rows(engine, "SELECT price_cents FROM products") == [(3000000000,)]
    finally:
        engine.dispose()
