"""Lifecycle hooks: each called once per status change, after it committed, never
inside a batch's transaction, whichever process claims it; a failing hook is logged
and the run goes on (backend/backfill/announce.py)."""
from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa

from backend.backfill import announce, runs
from backend.backfill.inprocess import run_in_process
from backend.backfill.model import RunStatus, Transition
from backend.backfill.registry import load_catalog
from backend.backfill.service import BackfillService
from backend.backfill.state import backfill_transitions
from backend.db import create_db_engine
from tests import backfills_with_hooks as hooked
from tests.backfill_helpers import FAST_SETTINGS, create_touch_tables, insert_rows, touched

NAME = "test_touch_hooked"


def hooked_service(url: str) -> BackfillService:
    catalog = load_catalog(["tests.backfills_for_tests", "tests.backfills_with_hooks"])
    return BackfillService(create_db_engine(url), catalog, FAST_SETTINGS)


@pytest.fixture
def service(db_url):
    from backend.migrations.alembic_api import upgrade

    upgrade(db_url, "head")
    svc = hooked_service(db_url)
    create_touch_tables(svc.engine)
    hooked.CALLS.clear()
    hooked.FAIL_IN.clear()
    hooked.ENGINE[:] = [svc.engine]
    yield svc
    hooked.ENGINE.clear()
    svc.engine.dispose()


def calls():
    return [(name, came_from, to) for name, _run, _status, _t, came_from, to, _seen in hooked.CALLS]


def unannounced(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(backfill_transitions)
                                  .where(sa.not_(backfill_transitions.c.announced))).scalar_one()


def test_a_run_calls_on_start_then_on_complete_once_each_after_commit(service):
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule(NAME)
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    assert calls() == [("on_start", "pending", "running"), ("on_complete", "running", "completed")]
    # Each hook saw its change committed and claimed from another connection, and got
    # the run as it is now; the completion was made in the last batch's transaction.
    assert all(seen for *_, seen in hooked.CALLS)
    assert hooked.CALLS[1][1:3] == (run_id, RunStatus.COMPLETED)
    assert unannounced(service.engine) == 0
    assert touched(service.engine) == {i: 1 for i in range(1, 31)}


def test_the_controls_call_on_pause_on_resume_on_fail_and_on_cancel(service):
    insert_rows(service.engine, range(1, 31))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) VALUES (25)")
    run_id = service.schedule(NAME)
    service.start(run_id, executor="inprocess")
    service.pause(run_id, actor="test", reason="peak")
    service.resume(run_id, actor="test")
    assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.FAILED
    service.retry_failed(run_id, actor="test")
    service.cancel(run_id, actor="test")
    assert calls() == [
        ("on_start", "pending", "running"), ("on_pause", "running", "paused"), ("on_resume", "paused", "running"),
        ("on_fail", "running", "failed"), ("on_resume", "failed", "running"),
        ("on_cancel", "running", "cancelled"),
    ]
    assert all(seen for *_, seen in hooked.CALLS)


def test_a_failing_hook_is_logged_and_the_run_goes_on(service, caplog):
    hooked.FAIL_IN.update({"on_start", "on_complete"})
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule(NAME)
    with caplog.at_level(logging.ERROR, logger="backend.backfill.announce"):
        assert run_in_process(service, run_id, sleep=lambda s: None).status == RunStatus.COMPLETED
    assert [name for name, *_ in calls()] == ["on_start", "on_complete"]  # once each, not retried
    assert "on_start of run" in caplog.text and "on_start hook fails on purpose" in caplog.text
    assert touched(service.engine) == {i: 1 for i in range(1, 21)}
    assert unannounced(service.engine) == 0


def test_a_rolled_back_change_is_never_announced(service):
    run_id = service.schedule(NAME)
    with pytest.raises(RuntimeError):
        with service.engine.begin() as connection:
            runs.transition(connection, run_id, RunStatus.CANCELLED, actor="test")
            raise RuntimeError("rolled back")
    service.announce()
    assert calls() == [] and service.get_run(run_id).status == RunStatus.PENDING


def test_a_change_left_behind_by_a_dead_process_is_announced_by_the_next_one(service):
    """A process that committed a change and died before its claim: the change waits
    in the table, and the next operation of any process announces it."""
    run_id = service.schedule(NAME)
    with service.engine.begin() as connection:  # as a process that dies right after its commit
        runs.transition(connection, run_id, RunStatus.CANCELLED, actor="test")
    assert unannounced(service.engine) == 1
    other = hooked_service(service.engine.url.render_as_string(hide_password=False))
    try:
        other.recover(lambda ids: None)
    finally:
        other.engine.dispose()
    assert calls() == [("on_cancel", "pending", "cancelled")]


def test_many_processes_claiming_at_once_announce_each_change_once(service):
    """Announcers on engines of their own (as processes are) race for the same changes."""
    url = service.engine.url.render_as_string(hide_password=False)
    expected = []
    for _ in range(6):
        run_id = service.schedule(NAME)
        with service.engine.begin() as connection:
            runs.transition(connection, run_id, RunStatus.RUNNING, actor="test")
            runs.transition(connection, run_id, RunStatus.PAUSED, actor="test")
            runs.transition(connection, run_id, RunStatus.CANCELLED, actor="test")
        expected += [("on_start", run_id), ("on_pause", run_id), ("on_cancel", run_id)]
    engines = [create_db_engine(url) for _ in range(4)]
    announcers = [announce.Announcer(service.catalog) for _ in engines]
    start = threading.Barrier(len(engines))

    def race(announcer, engine):
        start.wait()
        for _ in range(3):
            announcer.announce(engine)

    threads = [threading.Thread(target=race, args=pair) for pair in zip(announcers, engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert sorted((name, run) for name, run, *_ in hooked.CALLS) == sorted(expected)
    assert unannounced(service.engine) == 0


@pytest.mark.parametrize("came_from, to, hook", [
    ("pending", "running", "on_start"), ("paused", "running", "on_resume"), ("failed", "running", "on_resume"),
    ("waiting", "running", None), ("running", "waiting", None), ("running", "paused", "on_pause"),
    ("waiting", "paused", "on_pause"), ("running", "completed", "on_complete"),
    ("pending", "completed", "on_complete"), ("waiting", "failed", "on_fail"),
    ("paused", "cancelled", "on_cancel"), (None, "pending", None),
])
def test_which_change_calls_which_hook(came_from, to, hook):
    transition = Transition(id=1, run_id=1, from_status=came_from and RunStatus(came_from), to_status=RunStatus(to),
                            actor="engine", reason=None, at=None)
    assert announce.hook_name(transition) == hook
