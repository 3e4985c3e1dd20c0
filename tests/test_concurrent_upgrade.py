"""Several processes migrating one database at once apply each revision exactly once.

To make the race certain rather than likely, the test holds the schema lock itself
until all four processes are blocked on it, then lets them go together.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa

from backend.db import create_db_engine
from backend.migrations import alembic_api
from backend.migrations.lock import WAITING, schema_lock
from tests.processes import free_port
from tests.test_entry_scripts import (
    HEAD,
    REPO_ROOT,
    REVISIONS,
    applied_ids,
    script_command,
    script_env,
    start_script,
    stop,
    wait_for_health,
)

PROCESSES = 4


def wait_until(condition: Callable[[], bool], processes: list[subprocess.Popen], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        exited = [p.returncode for p in processes if p.poll() is not None]
        assert not exited, f"a process exited (codes {exited}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def pg_lock_waiters(engine: sa.Engine) -> int:
    """Waiters poll pg_try_advisory_lock (they hold no snapshot between polls), so
    pg_locks shows no waiting lock: their connection's label says they wait."""
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :waiting"
            " AND datname = current_database()"
        ), {"waiting": WAITING}).scalar_one()


def sqlite_file_users(path: str, processes: list[subprocess.Popen]) -> int:
    """Processes with the database file open: env.py opens it just before taking the
    file lock, so while the test holds the lock they are waiting on it."""
    def has_open(pid: int) -> bool:
        with contextlib.suppress(OSError):
            return any(os.path.realpath(fd) == path for fd in Path(f"/proc/{pid}/fd").iterdir())
        return False

    return sum(has_open(p.pid) for p in processes)


def lock_waiters(engine: sa.Engine, processes: list[subprocess.Popen]) -> int:
    if engine.dialect.name == "postgresql":
        return pg_lock_waiters(engine)
    return sqlite_file_users(os.path.realpath(engine.url.database), processes)


def release_when_all_wait(database_url: str, processes: list[subprocess.Popen]) -> None:
    """Hold the project's own schema lock until every process is blocked on it, then
    release it: they all race for the revisions at the same moment."""
    engine = create_db_engine(database_url)
    try:
        with schema_lock(engine):
            wait_until(lambda: lock_waiters(engine, processes) == len(processes), processes,
                       "every process waits on the schema lock")
    finally:
        engine.dispose()


def assert_applied_exactly_once(outputs: list[str], database_url: str) -> None:
    appliers = [applied_ids(output) for output in outputs if applied_ids(output)]
    assert appliers == [REVISIONS], outputs
    assert sum(f"already at head ({HEAD})" in output for output in outputs) == len(outputs) - 1, outputs
    assert alembic_api.current_revisions(database_url) == (HEAD,)


def run_migrations_at_once(database_url: str) -> list[str]:
    processes = [
        subprocess.Popen(script_command("run_migrations.py"), cwd=REPO_ROOT, env=script_env(database_url),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    try:
        release_when_all_wait(database_url, processes)
        results = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)
    for process, (_, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr
    return [stdout for stdout, _ in results]


def assert_concurrent_builds_valid(database_url: str) -> None:
    """0004, 0005, 0007 and 0009 build their indexes CONCURRENTLY while the other processes
    wait on the schema lock: with waiters that held a snapshot, the race would hang."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            indexes = dict(connection.execute(sa.text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname IN ('ix_users_email_normalized', 'uq_users_email_normalized', "
                "'uq_product_translations_locale_slug', 'ix_product_translations_locale_slug')")).all())
    finally:
        engine.dispose()
    assert indexes == {"uq_users_email_normalized": True, "uq_product_translations_locale_slug": True}


def test_run_migrations_processes_on_one_postgresql_database(pg_url):
    assert_applied_exactly_once(run_migrations_at_once(pg_url), pg_url)
    assert_concurrent_builds_valid(pg_url)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see who waits on the file lock")
def test_run_migrations_processes_on_one_sqlite_file(sqlite_url):
    assert_applied_exactly_once(run_migrations_at_once(sqlite_url), sqlite_url)


def test_run_py_replicas_on_one_postgresql_database(pg_url, tmp_path):
    ports = [free_port() for _ in range(PROCESSES)]
    logs = [tmp_path / f"run-{port}.log" for port in ports]
    servers = [start_script("run.py", "--port", str(port), database_url=pg_url, log=log) for port, log in zip(ports, logs)]
    try:
        release_when_all_wait(pg_url, servers)
        for port, server in zip(ports, servers):
            wait_for_health(port, server)
    finally:
        for server in servers:
            stop(server)
    assert_applied_exactly_once([log.read_text() for log in logs], pg_url)
    assert_concurrent_builds_valid(pg_url)


def test_a_symlink_to_the_sqlite_file_takes_the_same_lock(tmp_path):
    import threading

    (tmp_path / "shop.db").touch()
    (tmp_path / "current.db").symlink_to(tmp_path / "shop.db")  # e.g. a release's link to the data
    by_link = create_db_engine(f"sqlite:///{tmp_path / 'current.db'}")
    by_file = create_db_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    entered = threading.Event()

    def take_it_by_the_file():
        with schema_lock(by_file):
            entered.set()

    with schema_lock(by_link):
        other = threading.Thread(target=take_it_by_the_file)
        other.start()
        assert not entered.wait(0.5)  # it waits for ours
    other.join(10)
    assert entered.is_set()
    by_link.dispose()
    by_file.dispose()
