"""`run_migrations.py --rehearse` and `--backup DIR` on SQLite and on a real
PostgreSQL database: the rehearsal reports numbers and leaves the source exactly as
it was (byte for byte on SQLite, row for row on PostgreSQL) and drops its copy; a
backup restores to the source's exact content; a failed backup migrates nothing."""
from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import make_url

import run_migrations
from backend.db import create_db_engine
from backend.migrations import alembic_api
from backend.cli.configuration import load_config
from backend.cli.progress_display import ProgressDisplay
from backend.cli import rehearsal_report
from backend.migrations.safety import rehearsal as rehearsal_module
from backend.migrations.safety.databases import throwaway_copy
from backend.migrations.safety.locks import LockSampler
from backend.migrations.safety.timing import TransactionClock
from tests.conftest import POSTGRES_ADMIN_URL, create_pg_database, drop_pg_database
from tests.shop_data import seed_shop
from tests.test_entry_scripts import HEAD, REVISIONS, assert_one_line_error, run_script

START = "0002_backfill_state"
PENDING = REVISIONS[REVISIONS.index(START) + 1:]
REVISION_LINE = re.compile(r"^  (\S+)\s+(\d+\.\d{3}) s   lock: (.+)$")
BACKFILL_LINE = re.compile(r"^  backfill (\S+)\s+(\d+\.\d{3}) s   ([\d,]+) rows, ([\d,]+) rows/s, (\d+) batch")
SEEDED_ROWS = {"orders_total_cents": 40, "translation_slugs": 25, "users_email_normalized": 6}
# PostgreSQL only: the copies of the type changes 0010-0012 (SQLite alters the column in place).
TYPE_CHANGE_ROWS = {"type_change:order_items.unit_price_cents": 60, "type_change:products.price_cents": 5}
ONLINE = ("0004_translation_slugs", "0005_users_email_normalized", "0007_translation_slugs_unique")
# Seconds: far above what an online revision holds a blocking lock here (under 20 ms),
# and above a slow commit of this shared machine's disk (one took 0.63 s in a CI run,
# in a revision that held its lock for 13 ms the run before). What tells an online
# revision from one that scans under its lock is the lock's mode, checked beside it.
INSTANT = 2.0
BOUND_LINE = re.compile(r"^stall bound: a lock that blocks the shop held at most ([\d.]+) s \((\S+): (\w+) on (\w+), "
                        r"blocks (?:reads and writes|writes)\); lock_timeout (\d+) ms: a shop statement waits at most "
                        r"about ([\d.]+) s behind a revision$", re.MULTILINE)


def seeded(url: str) -> str:
    """A shop on the foundation schema, before the revisions with backfills."""
    alembic_api.upgrade(url, START)
    engine = create_db_engine(url)
    seed_shop(engine)
    engine.dispose()
    return url


@pytest.fixture
def seeded_sqlite(sqlite_url) -> str:
    return seeded(sqlite_url)


@pytest.fixture
def seeded_pg(pg_url) -> str:
    return seeded(pg_url)


def contents(url: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table: its columns and its rows, in a stable order."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            found = {}
            for table in tables:
                result = connection.execute(sa.text(f'SELECT * FROM "{table}"'))
                found[table] = (list(result.keys()), sorted((tuple(row) for row in result), key=repr))
            return found
    finally:
        engine.dispose()


def file_state(path: Path) -> tuple[str, list[str]]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


def invoke(*args: str):
    return CliRunner().invoke(run_migrations.main, list(args), catch_exceptions=False)


def phases(output: str) -> list[list[tuple[str, float, str]]]:
    """The revision lines of each phase of the report."""
    found: list[list] = []
    for line in output.splitlines():
        if re.match(r"^(upgrade to head|downgrade to |upgrade to head again)", line):
            found.append([])
        elif (match := REVISION_LINE.match(line)) and found:
            found[-1].append((match.group(1), float(match.group(2)), match.group(3)))
    return found


def backfills(output: str) -> list[tuple[str, int, int]]:
    return [(m.group(1), int(m.group(3).replace(",", "")), int(m.group(4).replace(",", "")))
            for line in output.splitlines() if (m := BACKFILL_LINE.match(line))]


def assert_rehearsal_report(output: str, copied: dict[str, int] = SEEDED_ROWS) -> None:
    upgrade, downgrade, again = phases(output)
    assert [name for name, _, _ in upgrade] == PENDING
    assert [name for name, _, _ in downgrade] == list(reversed(PENDING))
    assert [name for name, _, _ in again] == PENDING
    # Every revision is timed; one that does nothing on this database (0010-0012 on SQLite) may take under 0.5 ms.
    assert all(seconds >= 0 for phase in (upgrade, downgrade, again) for _, seconds, _ in phase)
    assert all(any(seconds > 0 for _, seconds, _ in phase) for phase in (upgrade, downgrade, again))
    measured = backfills(output)
    assert [(name, rows) for name, rows, _ in measured] == list(copied.items()) * 2
    assert all(rate > 0 for _, _, rate in measured)
    assert "window: about " in output
    assert output.splitlines()[-1] == "the copy was dropped; the database was not changed"


# --- rehearsal ---------------------------------------------------------------------------

def test_rehearsal_on_sqlite_reports_numbers_and_leaves_the_file_byte_for_byte(seeded_sqlite):
    path = Path(make_url(seeded_sqlite).database)
    before = file_state(path)

    result = invoke("--rehearse", "--database-url", seeded_sqlite)
    assert result.exit_code == 0, result.output
    assert_rehearsal_report(result.stdout)
    assert all(lock.startswith("database write lock for ") for phase in phases(result.stdout)
               for _, _, lock in phase)
    assert "made with the SQLite backup API" in result.stdout
    copy = Path(re.search(r"^copy: (\S+),", result.stdout, re.MULTILINE).group(1))
    assert not copy.exists() and not copy.parent.exists()
    assert file_state(path) == before  # same bytes, and no -wal/-shm or other file left behind


def test_rehearsal_on_postgresql_reports_locks_and_changes_no_row(seeded_pg):
    before = contents(seeded_pg)

    result = invoke("--rehearse", "--database-url", seeded_pg)
    assert result.exit_code == 0, result.output
    assert_rehearsal_report(result.stdout, {**SEEDED_ROWS, **TYPE_CHANGE_ROWS})
    assert "CREATE DATABASE ... TEMPLATE" in result.stdout  # nobody else was connected
    locks = {name: lock for name, _, lock in phases(result.stdout)[0]}
    assert re.match(r"AccessExclusiveLock on orders for (under )?[\d.]+ s \(blocks reads and writes\)",
                    locks["0003_orders_total_cents"]) or locks["0003_orders_total_cents"].startswith("no table lock")
    assert any(re.match(r"\w+Lock on \w+ for ", lock) for lock in locks.values())
    assert "pg_locks sampled every 2 ms" in result.stdout
    copy = re.search(r"^copy: (\S+),", result.stdout, re.MULTILINE).group(1)
    assert not database_exists(copy)
    assert contents(seeded_pg) == before
    assert alembic_api.current_revisions(seeded_pg) == (START,)


def quiet_rehearsal(url: str) -> rehearsal_module.Rehearsal:
    return rehearsal_module.rehearse(load_config(url), display=lambda: ProgressDisplay(io.StringIO()))


def by_name(phase: rehearsal_module.Phase) -> dict[str, rehearsal_module.RevisionTiming]:
    return {revision.revision: revision for revision in phase.revisions}


def test_online_revisions_hold_what_blocks_the_shop_for_an_instant_under_lock_timeout(seeded_pg, monkeypatch):
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_MS", "150")
    rehearsal = quiet_rehearsal(seeded_pg)  # it would hang if a sampler held a snapshot CONCURRENTLY waits for
    upgrades = [by_name(phase) for phase in (rehearsal.phases[0], rehearsal.phases[2])]
    long_parts = []
    for revisions in upgrades:
        assert all(revision.lock_timeouts == {150} and revision.lock_waits == () for revision in revisions.values())
        for name in ONLINE:
            revision = revisions[name]
            assert 0 in revision.autocommit_lock_timeouts  # CONCURRENTLY / VALIDATE: no timeout, no transaction
            blocking = [lock for lock in revision.locks if lock.blocks]
            assert all(lock.effect == "blocks reads and writes" for lock in blocking), blocking  # no SHARE build
            assert all(lock.at_most < INSTANT for lock in blocking), blocking
            long_parts += [lock for lock in revision.locks if lock.mode == "ShareUpdateExclusiveLock"]
    assert long_parts and all(lock.effect == "blocks neither" for lock in long_parts)

    report = "\n".join(rehearsal_report.report_lines(rehearsal))
    assert "lock_timeout 150 ms (none in its autocommit steps), no lock wait" in report
    assert "(blocks neither)" in report
    bound = BOUND_LINE.search(report)
    assert bound, report
    held, timeout, total = float(bound.group(1)), int(bound.group(5)), float(bound.group(6))
    assert held < INSTANT and timeout == 150 and total == pytest.approx(held + 0.150, abs=0.002)
    assert held >= max(lock.at_most for revision in upgrades[0].values() for lock in revision.locks if lock.blocks)


class OrdersBlocker(threading.Thread):
    """A session of the shop holding orders (ACCESS SHARE, as a long SELECT would)
    until the migration has waited for it, then half a second more: longer than the
    lock_timeout, so the waiting try times out however the threads are scheduled."""

    def __init__(self, url: str):
        super().__init__(name="orders-blocker", daemon=True)
        self.url, self.holding, self.pid, self.saw_wait = url, threading.Event(), None, False

    def run(self) -> None:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as holder, engine.connect() as watch:
                watch = watch.execution_options(isolation_level="AUTOCOMMIT")
                self.pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                holder.execute(sa.text("LOCK TABLE orders IN ACCESS SHARE MODE"))
                self.holding.set()
                deadline = time.monotonic() + 30
                while not self.saw_wait and time.monotonic() < deadline:
                    self.saw_wait = watch.execute(sa.text(
                        "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND relation = 'orders'::regclass"
                    )).scalar_one()
                    time.sleep(0.01)
                time.sleep(0.5)
                holder.rollback()
        finally:
            self.holding.set()
            engine.dispose()


def test_a_revision_blocked_by_a_shop_transaction_shows_its_retried_lock_waits(seeded_pg, monkeypatch):
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_MS", "150")
    real_upgrade, blockers = rehearsal_module._upgrade, []

    def upgrade_behind_a_blocker(config, *args):
        if not blockers:  # the first upgrade: 0003 adds a column to orders
            blockers.append(OrdersBlocker(config.database_url))
            blockers[0].start()
            assert blockers[0].holding.wait(10)
        real_upgrade(config, *args)

    monkeypatch.setattr(rehearsal_module, "_upgrade", upgrade_behind_a_blocker)
    rehearsal = quiet_rehearsal(seeded_pg)
    blocker = blockers[0]
    blocker.join(30)
    assert blocker.saw_wait

    upgrade, downgrade, again = (by_name(phase) for phase in rehearsal.phases)
    waited = upgrade["0003_orders_total_cents"]
    assert len(waited.lock_waits) >= 1
    assert all(message.startswith("lock wait: `ALTER TABLE orders ADD COLUMN total_cents")
               and "timed out after 150 ms" in message for message in waited.lock_waits)
    assert any(f"pid {blocker.pid}" in message for message in waited.lock_waits)
    assert waited.seconds >= 0.15 * (len(waited.lock_waits) + 1)  # its timed-out tries count
    others = [r for phase in (upgrade, downgrade, again) for r in phase.values() if r is not waited]
    assert all(r.lock_waits == () for r in others)

    lines = rehearsal_report.report_lines(rehearsal)
    at = next(i for i, line in enumerate(lines) if line.startswith("  0003_orders_total_cents"))
    count = len(waited.lock_waits)
    assert lines[at + 1].strip() == f"lock_timeout 150 ms, {count} lock wait{'s' if count > 1 else ''} (retried)"
    assert lines[at + 2].strip() == waited.lock_waits[0]
    assert sum("(retried)" in line for line in lines) == 1


def test_the_lock_sampler_holds_no_snapshot_a_concurrent_index_build_waits_for(pg_url):
    """With REPEATABLE READ as the database's default (production settings do that),
    a sampler in a transaction would keep its first snapshot: CONCURRENTLY would wait
    for it until the statement_timeout."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{make_url(pg_url).database}" '
                                   "SET default_transaction_isolation = 'repeatable read'"))
    admin.dispose()
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as ddl:
            ddl.execute(sa.text("CREATE TABLE items (id int)"))
            ddl.execute(sa.text("INSERT INTO items SELECT generate_series(1, 1000)"))
            with TransactionClock(pg_url), LockSampler(pg_url, interval=0.002) as sampler:
                while sampler.samples < 5 and sampler.error is None:
                    time.sleep(0.01)
                ddl.execute(sa.text("SET statement_timeout = '10s'"))
                ddl.execute(sa.text("CREATE INDEX CONCURRENTLY ix_items_id ON items (id)"))
                ddl.execute(sa.text("DROP INDEX CONCURRENTLY ix_items_id"))
                samples = sampler.samples
                while sampler.samples < samples + 5 and sampler.error is None:
                    time.sleep(0.01)
            assert sampler.error is None
            assert ddl.execute(sa.text("SHOW default_transaction_isolation")).scalar_one() == "repeatable read"
    finally:
        engine.dispose()


def test_a_busy_postgresql_source_is_copied_with_pg_dump_and_the_copy_always_dropped(seeded_pg):
    before = contents(seeded_pg)
    engine = sa.create_engine(seeded_pg, poolclass=sa.pool.NullPool)
    with engine.connect() as someone_else:  # CREATE DATABASE ... TEMPLATE would fail now
        someone_else.execute(sa.text("SELECT 1"))
        with pytest.raises(RuntimeError, match="boom"):
            with throwaway_copy(seeded_pg) as copy:
                assert copy.method.startswith("pg_dump | pg_restore")
                assert contents(copy.url) == before
                raise RuntimeError("boom")
    engine.dispose()
    assert not database_exists(copy.name)
    assert contents(seeded_pg) == before


def test_a_failed_rehearsal_drops_the_copy_and_says_so(seeded_pg, monkeypatch):
    def failing_upgrade(config, *_args):
        alembic_api.upgrade(config.database_url, "+1")  # the copy has changed, then:
        raise RuntimeError("the upgrade broke")

    monkeypatch.setattr(rehearsal_module, "_upgrade", failing_upgrade)
    before = contents(seeded_pg)
    result = invoke("--rehearse", "--database-url", seeded_pg)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: rehearsal failed during upgrade to head, backfills in batches ")
    assert "the upgrade broke" in result.stderr and "the copy was dropped" in result.stderr
    assert not rehearsal_copies(seeded_pg)
    assert contents(seeded_pg) == before


def test_rehearsal_at_head_has_nothing_to_do(sqlite_url):
    alembic_api.upgrade(sqlite_url, "head")
    result = invoke("--rehearse", "--database-url", sqlite_url)
    assert result.exit_code == 0
    assert f"nothing to rehearse: the database is already at head ({HEAD})" in result.stdout


def test_rehearse_and_backup_refuse_options_that_do_not_go_with_them(sqlite_url, tmp_path):
    backups = tmp_path / "backups"
    for args, message in ((["--rehearse", "--batched"], "--rehearse goes alone"),
                          (["--rehearse", "--backup", str(backups)], "--rehearse goes alone"),
                          (["--backup", str(backups), "--status"], "--backup goes with a migration"),
                          (["--backup", str(backups), "--log", "1"], "--backup goes with a migration")):
        result = CliRunner().invoke(run_migrations.main, [*args, "--database-url", sqlite_url])
        assert result.exit_code == 2 and message in result.stderr, result.output
    assert not backups.exists()
    assert not Path(make_url(sqlite_url).database).exists()  # not even opened


# --- backup ------------------------------------------------------------------------------

def backup_lines(output: str) -> tuple[Path, str]:
    path = Path(re.search(r"^backup written: (\S+) \([\d,]+ bytes\)$", output, re.MULTILINE).group(1))
    command = re.search(r"^restore it with: (.+)$", output, re.MULTILINE).group(1)
    return path, command


def test_sqlite_backup_before_migrating_restores_to_the_same_content(seeded_sqlite, tmp_path):
    before = contents(seeded_sqlite)
    result = invoke("--backup", str(tmp_path / "backups"), "--batched", "--database-url", seeded_sqlite)
    assert result.exit_code == 0, result.output
    path, command = backup_lines(result.stdout)
    assert result.stdout.index("backup written") < result.stdout.index("applied ")
    assert path.parent == tmp_path / "backups" and re.fullmatch(r"shop-\d{8}T\d{6}Z\.db", path.name)
    assert contents(f"sqlite:///{path}") == before
    assert alembic_api.current_revisions(seeded_sqlite) == (HEAD,)

    restored = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    assert contents(seeded_sqlite) == before
    assert alembic_api.current_revisions(seeded_sqlite) == (START,)


def test_postgresql_backup_with_batched_restores_to_the_same_content(seeded_pg, tmp_path):
    before = contents(seeded_pg)
    result = invoke("--backup", str(tmp_path), "--batched", "--database-url", seeded_pg)
    assert result.exit_code == 0, result.output
    path, command = backup_lines(result.stdout)
    database = make_url(seeded_pg).database
    assert re.fullmatch(rf"{database}-\d{{8}}T\d{{6}}Z\.dump", path.name)
    assert alembic_api.current_revisions(seeded_pg) == (HEAD,)

    fresh = create_pg_database()
    try:
        restore = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname",
                                  make_url(fresh).set(drivername="postgresql").render_as_string(False), str(path)],
                                 capture_output=True, text=True, timeout=60)
        assert restore.returncode == 0, restore.stderr
        assert contents(fresh) == before
    finally:
        drop_pg_database(fresh)

    restored = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)  # the printed one
    assert restored.returncode == 0, restored.stderr
    assert contents(seeded_pg) == before  # the migrated database is back as it was


def test_the_printed_restore_also_removes_the_tables_the_migration_added(pg_url, tmp_path):
    alembic_api.upgrade(pg_url, REVISIONS[0])  # before the engine's tables exist
    engine = create_db_engine(pg_url)
    seed_shop(engine, orders=0)
    engine.dispose()
    before = contents(pg_url)
    result = invoke("--backup", str(tmp_path), "--batched", "--database-url", pg_url)
    assert result.exit_code == 0, result.output
    _, command = backup_lines(result.stdout)
    assert "backfill_runs" in contents(pg_url)

    restored = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    assert contents(pg_url) == before
    assert alembic_api.current_revisions(pg_url) == (REVISIONS[0],)
    again = invoke("--batched", "--database-url", pg_url)  # and it migrates again from there
    assert again.exit_code == 0, again.output


def test_a_backup_that_cannot_be_written_migrates_nothing(seeded_sqlite, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = run_script("run_migrations.py", "--batched", "--backup", str(blocker / "backups"),
                        database_url=seeded_sqlite)
    assert_one_line_error(result, "Error: backup failed, nothing was migrated: cannot create directory")
    assert result.stdout == ""
    assert alembic_api.current_revisions(seeded_sqlite) == (START,)


def test_without_pg_dump_the_backup_fails_and_nothing_is_migrated(pg_url, tmp_path):
    env_path = os.environ["PATH"]
    os.environ["PATH"] = str(tmp_path)  # no pg_dump here
    try:
        result = run_script("run_migrations.py", "--backup", str(tmp_path / "b"), database_url=pg_url)
    finally:
        os.environ["PATH"] = env_path
    assert_one_line_error(result, "Error: backup failed, nothing was migrated: pg_dump is not installed")
    assert alembic_api.current_revisions(pg_url) == ()
    assert list((tmp_path / "b").iterdir()) == []  # no half-written file


# --- helpers -----------------------------------------------------------------------------

def database_exists(name: str) -> bool:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                                      {"n": name}).scalar_one() == 1
    finally:
        engine.dispose()


def rehearsal_copies(url: str) -> list[str]:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                           {"p": f"{make_url(url).database}_rehearsal_%"}).scalars())
    finally:
        engine.dispose()
