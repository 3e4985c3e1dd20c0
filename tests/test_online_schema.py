"""Schema steps that do not stall the shop (PostgreSQL): the schema lock's waiters
hold no snapshot, every revision runs under a short lock_timeout with retries, and
the online helpers leave the same schema as the plain operations."""
from __future__ import annotations

import contextlib
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from backend.db import create_db_engine
from backend.migrations import alembic_api
from backend.migrations import online
from backend.migrations.lock import WAITING, schema_lock
from backend.migrations.lock_retries import LockRetrySettings
from tests.test_entry_scripts import HEAD, REPO_ROOT, script_command, script_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def engine(pg_url):
    engine = create_db_engine(pg_url)
    yield engine
    engine.dispose()


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def waiting_processes(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :label AND datname = current_database()"
        ), {"label": WAITING}).scalar_one()


# --- the schema lock -----------------------------------------------------------------

def test_a_concurrent_index_build_does_not_wait_for_processes_waiting_on_the_schema_lock(engine):
    """pg_advisory_lock() would keep the waiter inside a statement, with a snapshot
    that CREATE INDEX CONCURRENTLY waits for, while the waiter waits for the builder."""
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (a int)"))
        connection.execute(sa.text("INSERT INTO t SELECT generate_series(1, 1000)"))
    entered = threading.Event()

    def waiter():
        with schema_lock(engine, poll_seconds=0.02):
            entered.set()

    with schema_lock(engine):
        thread = threading.Thread(target=waiter)
        thread.start()
        wait_for(lambda: waiting_processes(engine) == 1, "the second process waits on the schema lock")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as builder:
            builder.execute(sa.text("SET statement_timeout = '10s'"))  # a hang fails instead
            builder.execute(sa.text("CREATE INDEX CONCURRENTLY ix_t_a ON t (a)"))
        assert not entered.is_set()
    thread.join(10)
    assert entered.is_set()
    with engine.connect() as connection:
        assert connection.execute(sa.text(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_a'::regclass")).scalar_one()


# --- lock_timeout and retries --------------------------------------------------------

@contextlib.contextmanager
def transaction_reading_orders(engine):
    """An open transaction that has read orders: its ACCESS SHARE lock stops any
    ALTER TABLE orders until it ends (a report, a stuck request)."""
    connection = engine.connect()
    connection.execute(sa.text("SELECT count(*) FROM orders"))
    pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    try:
        yield pid
    finally:
        connection.rollback()
        connection.close()


class Probe(threading.Thread):
    """A shop connection reading orders in a loop; records its slowest statement."""

    def __init__(self, engine):
        super().__init__(daemon=True)
        self.engine, self.stop, self.longest, self.count = engine, threading.Event(), 0.0, 0

    def run(self):
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            while not self.stop.is_set():
                started = time.monotonic()
                connection.execute(sa.text("SELECT id FROM orders ORDER BY id LIMIT 1"))
                self.longest = max(self.longest, time.monotonic() - started)
                self.count += 1
                time.sleep(0.01)


def alter_waits_on_orders(engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'orders'::regclass")).scalar_one() > 0


def start_upgrade(pg_url: str, **settings: str) -> subprocess.Popen:
    env = {key: value for key, value in script_env(pg_url).items() if key != "CELERY_BROKER_URL"}
    return subprocess.Popen(script_command("run_migrations.py", "--batched"), cwd=REPO_ROOT, env={**env, **settings},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_alter_behind_a_long_transaction_never_queues_the_shop_and_succeeds_once_it_ends(pg_url, engine):
    alembic_api.upgrade(pg_url, "0002_backfill_state")
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'x')"))
        connection.execute(sa.text("INSERT INTO orders (user_id, status, currency) SELECT id, 'paid', 'EUR' FROM users"))
    probe = Probe(engine)
    with transaction_reading_orders(engine) as blocker_pid:
        upgrade = start_upgrade(pg_url, MIGRATION_LOCK_TIMEOUT_MS="100", MIGRATION_LOCK_TRIES="60")
        wait_for(lambda: alter_waits_on_orders(engine) or upgrade.poll() is not None,
                 "0003's ALTER waits for the lock on orders", timeout=60)
        probe.start()
        time.sleep(3)  # 0003 (ADD COLUMN orders.total_cents) keeps timing out meanwhile
        assert upgrade.poll() is None
    stdout, stderr = upgrade.communicate(timeout=90)
    probe.stop.set()
    probe.join(5)
    assert upgrade.returncode == 0, stderr
    assert alembic_api.current_revisions(pg_url) == (HEAD,)
    assert "lock wait:" in stdout and f"pid {blocker_pid}" in stdout, stdout  # the progress display's lines
    assert probe.count > 50
    # Without lock_timeout the ALTER would queue every read of orders behind it for the 3 s.
    assert probe.longest < 1.5, f"a read of orders waited {probe.longest:.2f} s behind the ALTER"


def test_the_upgrade_gives_up_with_one_line_naming_the_blocker(pg_url, engine):
    alembic_api.upgrade(pg_url, "0002_backfill_state")
    with transaction_reading_orders(engine) as blocker_pid:
        upgrade = start_upgrade(pg_url, MIGRATION_LOCK_TIMEOUT_MS="50", MIGRATION_LOCK_TRIES="2")
        _stdout, stderr = upgrade.communicate(timeout=60)
    assert upgrade.returncode == 1
    error = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, stderr
    assert "could not take its locks" in error[0] and "2 tries" in error[0] and f"pid {blocker_pid}" in error[0]
    assert "ALTER TABLE orders" in error[0]
    assert alembic_api.current_revisions(pg_url) == ("0002_backfill_state",)  # 0003 rolled back whole


@pytest.mark.parametrize("value", ["0", "abc", "-5"])
def test_a_bad_lock_setting_stops_the_script_with_one_line(pg_url, value):
    result = subprocess.run(script_command("run_migrations.py"), cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**script_env(pg_url), "MIGRATION_LOCK_TIMEOUT_MS": value}, timeout=60)
    assert result.returncode != 0
    assert "MIGRATION_LOCK_TIMEOUT_MS" in result.stderr and "Traceback" not in result.stderr


def test_backoff_grows_is_capped_and_jittered():
    import random

    settings = LockRetrySettings(backoff_seconds=0.5, backoff_max_seconds=4.0)
    rng = random.Random(1)
    waits = [settings.sleep_before(attempt, rng) for attempt in range(2, 10)]
    assert 0.25 <= waits[0] <= 0.5
    assert all(w <= 4.0 for w in waits) and max(waits) > 2.0
    assert len({round(w, 6) for w in waits}) == len(waits)  # jittered, not a fixed ladder


# --- the online helpers --------------------------------------------------------------

@contextlib.contextmanager
def operations(engine):
    """Alembic's `op`, as in a revision, on its own connection (autocommit blocks work)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"transaction_per_migration": True})
        with Operations.context(context):
            with context.begin_transaction(_per_migration=True):
                yield
            if connection.in_transaction():
                connection.commit()


def scalar(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar()


def test_create_index_replaces_an_invalid_index_left_by_a_failed_build(engine):
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (a int, b int)"))
        connection.execute(sa.text("INSERT INTO t VALUES (1, 1), (1, 2)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        with pytest.raises(sa.exc.IntegrityError):
            connection.execute(sa.text("CREATE UNIQUE INDEX CONCURRENTLY ix_t_a ON t (a)"))
    assert scalar(engine, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_a'::regclass") is False
    with operations(engine):
        online.create_index("ix_t_a", "t", ["a"])
    assert scalar(engine, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_a'::regclass") is True
    assert scalar(engine, "SELECT indisunique FROM pg_index WHERE indexrelid = 'ix_t_a'::regclass") is False
    with operations(engine):
        online.create_index("ix_t_a", "t", ["a"])  # a second run keeps it
        online.drop_index("ix_t_a", "t")
    assert scalar(engine, "SELECT to_regclass('ix_t_a')") is None


def test_set_not_null_leaves_no_check_behind_and_refuses_null_rows(engine):
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (a int)"))
        connection.execute(sa.text("INSERT INTO t VALUES (1), (NULL)"))
    with pytest.raises(sa.exc.IntegrityError):
        with operations(engine):
            online.set_not_null("t", "a", existing_type=sa.Integer())
    assert scalar(engine, "SELECT is_nullable FROM information_schema.columns WHERE table_name = 't'") == "YES"
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE t SET a = 2 WHERE a IS NULL"))
    with operations(engine):  # again, after the failed try left its NOT VALID check
        online.set_not_null("t", "a", existing_type=sa.Integer())
    assert scalar(engine, "SELECT is_nullable FROM information_schema.columns WHERE table_name = 't'") == "NO"
    assert scalar(engine, "SELECT count(*) FROM pg_constraint WHERE conrelid = 't'::regclass") == 0


def test_unique_constraint_and_foreign_key_end_as_ordinary_validated_constraints(engine):
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE p (id int PRIMARY KEY)"))
        connection.execute(sa.text("CREATE TABLE c (id int, p_id int, code text)"))
        connection.execute(sa.text("INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1, 'x'), (2, 1, 'y')"))
    for _ in range(2):  # each can run again after a try that got through
        with operations(engine):
            online.add_unique_constraint("uq_c_code", "c", ["code"])
            online.add_foreign_key("fk_c_p_id_p", "c", "p", ["p_id"], ["id"], ondelete="CASCADE")
    rows = {name: (kind, validated) for name, kind, validated in engine.connect().execute(sa.text(
        "SELECT conname, contype, convalidated FROM pg_constraint WHERE conrelid = 'c'::regclass")).all()}
    assert rows == {"uq_c_code": ("u", True), "fk_c_p_id_p": ("f", True)}
    with engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):
        connection.execute(sa.text("INSERT INTO c VALUES (3, 1, 'x')"))


def test_lock_timeout_context_restores_the_migrations_own(engine):
    with engine.connect() as connection:
        connection.exec_driver_sql("SET lock_timeout = '200ms'")
        context = MigrationContext.configure(connection)
        with Operations.context(context):
            with online.lock_timeout(5):
                assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "5s"
            with online.lock_timeout(None):
                assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "0"
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "200ms"
