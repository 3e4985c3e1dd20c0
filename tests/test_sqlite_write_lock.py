"""SQLite: the engine's transactions that read before they write take the write lock
at BEGIN, so another process's commit between their read and their write makes them
wait (busy_timeout) instead of failing with "database is locked"."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from backend.backfill import coordinator
from backend.db import create_db_engine, write_transaction
from tests.backfill_helpers import insert_rows, touch_service


@pytest.fixture
def service(sqlite_url):
    svc = touch_service(sqlite_url)
    yield svc
    svc.engine.dispose()


class WriterInBetween:
    """Right after the first statement containing `fragment` runs on `engine`, another
    connection inserts a row and commits. It is given half a second before the
    statement's caller goes on: time enough, unless it has to wait for the write lock."""

    def __init__(self, engine: sa.Engine, url: str, fragment: str):
        self.fragment, self.other = fragment, create_db_engine(url)
        self.events: list[str] = []
        self.thread: threading.Thread | None = None
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.fragment in statement and self.thread is None:
            self.thread = threading.Thread(target=self._write)
            self.thread.start()
            self.thread.join(0.5)

    def _write(self):
        insert_rows(self.other, [999])
        self.events.append("other committed")

    def finish(self) -> list[str]:
        assert self.thread is not None, f"no statement containing {self.fragment!r} ran"
        self.thread.join(10)
        self.other.dispose()
        return self.events


def test_a_write_transaction_waits_for_a_writer_instead_of_failing(sqlite_url):
    engine = create_db_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
        connection.exec_driver_sql("INSERT INTO counter VALUES (1, 0)")
    other = create_db_engine(sqlite_url)
    committed = threading.Event()

    def other_write():
        with other.begin() as connection:
            connection.exec_driver_sql("UPDATE counter SET n = n + 10")
        committed.set()

    with write_transaction(engine) as connection:
        n = connection.exec_driver_sql("SELECT n FROM counter").scalar_one()
        thread = threading.Thread(target=other_write)
        thread.start()
        assert not committed.wait(0.5)  # the other writer waits for us
        connection.exec_driver_sql("UPDATE counter SET n = ?", (n + 1,))
    thread.join(10)
    assert committed.is_set()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT n FROM counter").scalar_one() == 11  # neither update lost
    engine.dispose()
    other.dispose()


def test_handing_out_batches_survives_a_commit_between_its_read_and_its_write(service, sqlite_url):
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    carved = service.advance(run_id)
    assert carved
    writer = WriterInBetween(service.engine, sqlite_url, "SELECT backfill_batches.id")
    handed_out = coordinator.dispatchable_batches(service.engine, run_id)
    writer.events.append("ours done")
    assert writer.finish() == ["ours done", "other committed"]
    assert handed_out == carved
