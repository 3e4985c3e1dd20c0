"""Expand, backfill, contract with the shipped backfills: the gate stops plain
`alembic upgrade head`, `--batched` passes it, the downgrade unschedules."""
from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from backend.migrations.backfill_ops import BackfillNotFinished
from backend.backfill.model import RunStatus
from backend.config import Config
from backend.db import create_db_engine
from backend.migrations.alembic_api import current_revisions, downgrade, head_revisions, upgrade
from backend.migrations.batched import BatchedOptions, migrate_batched
from backend.cli.progress_display import ProgressDisplay
from backend.text import normalize_email
from tests.processes import ROOT, subprocess_env
from tests.shop_data import seed_shop

FOUNDATION = "0002_backfill_state"


@pytest.fixture
def shop(db_url):
    upgrade(db_url, FOUNDATION)
    engine = create_db_engine(db_url)
    expected = seed_shop(engine)
    yield db_url, engine, expected
    engine.dispose()


def runs(engine):
    with engine.connect() as connection:
        return {r.name: r for r in connection.execute(sa.text("SELECT * FROM backfill_runs ORDER BY id"))}


def batched(url, capsys=None):
    return migrate_batched(Config.from_env({"DATABASE_URL": url}), BatchedOptions(), ProgressDisplay(force_terminal=False))


def test_plain_upgrade_stops_at_the_gate_with_the_command_to_finish(shop):
    url, engine, _ = shop
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT,
                            env=subprocess_env(DATABASE_URL=url), capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "FAILED: revision 0006_orders_total_not_null requires backfill orders_total_cents" in output
    assert "Finish it with: python run_migrations.py --batched" in output
    assert "Traceback" not in output
    assert current_revisions(url) == ("0005_users_email_normalized",)
    assert {name: r.status for name, r in runs(engine).items()} == {
        "orders_total_cents": "pending", "translation_slugs": "pending", "users_email_normalized": "pending"}


def test_batched_passes_the_gates_and_completes_every_backfill(shop):
    url, engine, expected = shop
    batched(url)
    assert current_revisions(url) == head_revisions()
    assert {r.status for r in runs(engine).values()} == {RunStatus.COMPLETED}
    with engine.connect() as connection:
        assert dict(connection.execute(sa.text("SELECT id, total_cents FROM orders")).all()) == expected
        slugs = connection.execute(sa.text("SELECT locale, slug FROM product_translations ORDER BY product_id")).all()
        emails = connection.execute(sa.text("SELECT email, email_normalized FROM users")).all()
    assert len(set(slugs)) == len(slugs)  # unique per locale
    assert ("de", "gruener-tee-groesse") in slugs and ("de", "gruener-tee-groesse-2") in slugs
    assert ("ja", "緑茶-ティー") in slugs
    assert all(normalized == normalize_email(email) for email, normalized in emails)
    assert ("User1@Bücher.Example", "user1@xn--bcher-kva.example") in emails


def test_gate_checks_the_data_not_only_the_status(shop):
    url, engine, _ = shop
    upgrade(url, "0005_users_email_normalized")
    batched_to_0005 = migrate_batched  # noqa: F841 (readability)
    from backend.backfill.inprocess import run_in_process
    from backend.backfill.service import BackfillService

    service = BackfillService.from_config(Config.from_env({"DATABASE_URL": url}), engine=engine)
    run_id = runs(engine)["orders_total_cents"].id
    assert run_in_process(service, run_id).status == RunStatus.COMPLETED
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE orders SET total_cents = NULL WHERE id IN (3, 4)"))
    with pytest.raises(BackfillNotFinished, match=r"completed but 2 rows still need work"):
        upgrade(url, "0006_orders_total_not_null")
    batched(url)  # schedules a new run for what is left, then passes
    assert current_revisions(url) == head_revisions()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders WHERE total_cents IS NULL")).scalar() == 0
        statuses = connection.execute(
            sa.text("SELECT status FROM backfill_runs WHERE name = 'orders_total_cents' ORDER BY id")).scalars().all()
    assert statuses == ["completed", "completed"]


def test_empty_database_passes_the_gates_without_batches(db_url):
    upgrade(db_url, "head")
    engine = create_db_engine(db_url)
    found = runs(engine)
    engine.dispose()
    assert found["orders_total_cents"].status == "completed"
    assert found["users_email_normalized"].status == "completed"  # 0009's gate: no row needed work


def cancel_log(engine) -> dict[str, tuple]:
    """Each run's cancellation in the transition log: backfill name -> (actor, reason)."""
    with engine.connect() as connection:
        return {name: (actor, reason) for name, actor, reason in connection.execute(sa.text(
            "SELECT r.name, t.actor, t.reason FROM backfill_transitions t JOIN backfill_runs r ON r.id = t.run_id "
            "WHERE t.to_status = 'cancelled'"))}


def test_downgrade_unschedules_and_keeps_the_history(shop):
    """Unfinished runs are cancelled with the downgraded revision as the reason; no run,
    batch or transition row is deleted (issue 21)."""
    url, engine, _ = shop
    upgrade(url, "0005_users_email_normalized")
    assert set(runs(engine)) == {"orders_total_cents", "translation_slugs", "users_email_normalized"}
    downgrade(url, "0003_orders_total_cents")
    assert {name: run.status for name, run in runs(engine).items()} == {
        "orders_total_cents": "pending", "translation_slugs": "cancelled", "users_email_normalized": "cancelled"}
    downgrade(url, FOUNDATION)
    assert {run.status for run in runs(engine).values()} == {"cancelled"}
    assert cancel_log(engine) == {
        "orders_total_cents": ("alembic downgrade", "unscheduled by downgrade of 0003_orders_total_cents"),
        "translation_slugs": ("alembic downgrade", "unscheduled by downgrade of 0004_translation_slugs"),
        "users_email_normalized": ("alembic downgrade", "unscheduled by downgrade of 0005_users_email_normalized")}
    with engine.connect() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("orders")}
    assert "total_cents" not in columns


def test_full_cycle_down_to_the_foundation_and_up_again(shop):
    """The upgrade after a downgrade schedules fresh runs: the gates judge those."""
    url, engine, expected = shop
    batched(url)
    completed = {name: run.id for name, run in runs(engine).items()}
    downgrade(url, FOUNDATION)
    assert {name: run.id for name, run in runs(engine).items()} == completed  # history kept
    batched(url)
    again = runs(engine)  # the latest run of each
    assert all(again[name].id > completed[name] and again[name].status == "completed" for name in completed)
    with engine.connect() as connection:
        assert dict(connection.execute(sa.text("SELECT id, total_cents FROM orders")).all()) == expected


def test_a_backfill_without_a_pending_filter_passes_its_gate_only_once_its_run_completed(db_url, monkeypatch):
    """Without a filter the gate cannot tell done rows from the others: a pending run
    over a table with rows is not work already done."""
    from backend.backfill.inprocess import run_in_process
    from backend.migrations.backfill_ops import _gate_problem
    from tests.backfill_helpers import insert_rows, touch_service, touched

    monkeypatch.setenv("BACKFILL_MODULES", "tests.backfills_for_tests")
    service = touch_service(db_url)
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch")  # no pending filter
    with service.engine.begin() as connection:
        assert _gate_problem(connection, "test_touch") == f"run {run_id} is pending, 30 rows still need work"
    assert service.get_run(run_id).status == RunStatus.PENDING
    assert run_in_process(service, run_id).status == RunStatus.COMPLETED
    with service.engine.begin() as connection:
        assert _gate_problem(connection, "test_touch") is None
    assert touched(service.engine) == {i: 1 for i in range(1, 31)}
    service.engine.dispose()


def test_batched_stops_when_a_gate_stays_closed_after_its_backfills_ran(sqlite_url, monkeypatch):
    """A backfill that completes but leaves rows its filter still finds would send
    --batched round the gate forever: after a few passes it stops with the gate's words."""
    import backend.migrations.batched as batched_module

    upgrade(sqlite_url, "head")
    attempts = []

    def gate_never_opens(*args, **kwargs):
        attempts.append(1)
        raise BackfillNotFinished("0099_contract", ["users_email_normalized"],
                                  ["run 7 completed but 3 rows still need work"])

    monkeypatch.setattr(batched_module, "upgrade", gate_never_opens)
    monkeypatch.setattr(batched_module, "_finish_all", lambda *args, **kwargs: True)
    with pytest.raises(batched_module.BatchedMigrationFailed) as failed:
        batched(sqlite_url)
    assert str(failed.value) == ("0099_contract still waits after its backfills ran 3 times: "
                                 "run 7 completed but 3 rows still need work")
    assert len(attempts) == batched_module.MAX_PASSES_PER_GATE + 1


def test_the_not_null_check_is_validated_while_the_shop_keeps_writing_orders(pg_url):
    """Revision 0006 validates its CHECK in a transaction of its own: a write to orders
    made while VALIDATE starts does not wait for the migration (it would wait for its
    end if the ACCESS EXCLUSIVE lock of ADD CONSTRAINT were still held)."""
    import threading

    upgrade(pg_url, FOUNDATION)
    engine = create_db_engine(pg_url)
    seed_shop(engine)
    writes: list[str] = []

    def shop_write():
        try:
            with engine.begin() as connection:
                connection.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
                connection.execute(sa.text("UPDATE orders SET status = 'shipped' WHERE id = 1"))
            writes.append("written")
        except sa.exc.DBAPIError as exc:
            writes.append(f"blocked: {exc.orig}")

    def during_validate(conn, cursor, statement, *args):
        if "VALIDATE CONSTRAINT" in statement and not writes:
            writer = threading.Thread(target=shop_write)
            writer.start()
            writer.join(10)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", during_validate)
    try:
        batched(pg_url)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", during_validate)
    assert writes == ["written"]
    assert current_revisions(pg_url) == head_revisions()
    with engine.connect() as connection:
        constraints = connection.execute(sa.text(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'ck_orders_total_cents_not_null'")).scalar_one()
        nullable = connection.execute(sa.text(
            "SELECT is_nullable FROM information_schema.columns "
            "WHERE table_name = 'orders' AND column_name = 'total_cents'")).scalar_one()
    assert (constraints, nullable) == (0, "NO")
    engine.dispose()


def test_0006_runs_again_after_an_attempt_that_left_its_check_behind(pg_url):
    """VALIDATE commits apart from the rest: an attempt that failed after it (or in it)
    leaves the NOT VALID check; the next attempt replaces it."""
    from backend.backfill.inprocess import run_in_process
    from backend.backfill.service import BackfillService

    upgrade(pg_url, FOUNDATION)
    engine = create_db_engine(pg_url)
    seed_shop(engine)
    upgrade(pg_url, "0005_users_email_normalized")
    service = BackfillService.from_config(Config.from_env({"DATABASE_URL": pg_url}), engine=engine)
    assert run_in_process(service, runs(engine)["orders_total_cents"].id).status == RunStatus.COMPLETED
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE orders ADD CONSTRAINT ck_orders_total_cents_not_null "
                                   "CHECK (total_cents IS NOT NULL) NOT VALID"))
    upgrade(pg_url, "0006_orders_total_not_null")
    assert current_revisions(pg_url) == ("0006_orders_total_not_null",)
    engine.dispose()


def test_batched_does_not_start_over_a_failed_run_it_points_to_retry(shop):
    from backend.migrations.batched import BatchedMigrationFailed

    url, engine, _ = shop
    upgrade(url, "0005_users_email_normalized")
    with engine.begin() as connection:  # as a run whose batches failed for good leaves it
        connection.execute(sa.text("UPDATE backfill_runs SET status = 'failed', last_error = 'batch 3 failed: boom' "
                                   "WHERE name = 'orders_total_cents'"))
    run_id = runs(engine)["orders_total_cents"].id
    with pytest.raises(BatchedMigrationFailed) as failed:
        batched(url)
    assert str(failed.value) == (
        f"backfill orders_total_cents (run {run_id}) failed: batch 3 failed: boom; retry its failed batches with: "
        f"python run_migrations.py --retry {run_id} (or --cancel {run_id} to start a new run)")
    with engine.connect() as connection:
        assert connection.execute(sa.text(
            "SELECT count(*) FROM backfill_runs WHERE name = 'orders_total_cents'")).scalar_one() == 1
    assert current_revisions(url) == ("0005_users_email_normalized",)


def test_order_totals_beyond_32_bits_are_computed_in_bigint(pg_url):
    """quantity x unit price of one line above 2**31 cents (1,000 x 3,000,000): PostgreSQL
    would overflow int4 if the two integer columns were multiplied as they are."""
    from backend.backfill.inprocess import run_in_process
    from backend.backfill.service import BackfillService

    upgrade(pg_url, FOUNDATION)
    engine = create_db_engine(pg_url)
    seed_shop(engine, orders=2)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO orders (id, user_id, status, currency) VALUES (100, 1, 'paid', 'EUR')"))
        connection.execute(sa.text("INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
                                   "VALUES (100, 1, 1000, 3000000), (100, 2, 1, 5)"))
    upgrade(pg_url, "0005_users_email_normalized")
    service = BackfillService.from_config(Config.from_env({"DATABASE_URL": pg_url}), engine=engine)
    assert run_in_process(service, runs(engine)["orders_total_cents"].id).status == RunStatus.COMPLETED
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT total_cents FROM orders WHERE id = 100")).scalar_one() == 3_000_000_005
    engine.dispose()
