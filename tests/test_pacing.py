"""Windows, throttling, adaptive batch size, health back-off, split on timeout and
failure tolerance, driven in-process with a simulated clock (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from backend.backfill.clock import as_utc, use_clock
from backend.backfill.inprocess import run_in_process
from backend.backfill.settings import EngineSettings
from backend.backfill.model import Batch, RunStatus
from backend.backfill.state import backfill_batches
from backend.migrations.alembic_api import upgrade
from tests import backfills_for_tests
from tests.backfill_helpers import create_touch_tables, insert_rows, make_service, touch_service, touched

UTC = timezone.utc


@pytest.fixture
def service(db_url):
    upgrade(db_url, "head")
    svc = make_service(db_url, EngineSettings(lease_seconds=3600, retry_backoff_seconds=0.01,
                                              health_backoff_seconds=30))
    create_touch_tables(svc.engine)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def clock(monkeypatch):
    fake = backfills_for_tests.FakeClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    monkeypatch.setattr(backfills_for_tests, "ACTIVE_CLOCK", fake)
    with use_clock(fake):
        yield fake


def batch_rows(service, run_id):
    with service.engine.connect() as connection:
        return [Batch.from_row(row) for row in connection.execute(
            sa.select(backfill_batches).where(backfill_batches.c.run_id == run_id).order_by(backfill_batches.c.seq)
        ).mappings()]


def test_outside_the_window_the_run_waits_and_nothing_runs(service, clock):
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch_windowed")
    progress = run_in_process(service, run_id, sleep=clock.sleep, wait=False)
    assert progress.status == RunStatus.WAITING
    run = service.get_run(run_id)
    assert "outside the maintenance windows (daily 01:00-02:00)" in run.wait_reason
    assert as_utc(run.next_window_at) == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert set(touched(service.engine).values()) == {0}
    assert service.transitions(run_id)[-1].actor == "maintenance window"


def test_the_run_resumes_at_the_next_opening_and_never_overruns(service, clock, monkeypatch):
    monkeypatch.setattr(backfills_for_tests, "SECONDS_PER_ROW", 66.0)  # a batch of 10 takes 11 minutes
    insert_rows(service.engine, range(1, 121))  # 12 batches; 5 fit in each one-hour window
    run_id = service.schedule("test_touch_windowed")
    waits = []
    progress = run_in_process(service, run_id, sleep=clock.sleep, on_wait=lambda p, until: waits.append(until))
    assert progress.status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in range(1, 121)}
    for batch in batch_rows(service, run_id):
        start = as_utc(batch.started_at)
        end = start + timedelta(milliseconds=batch.duration_ms)
        assert 1 <= start.hour < 2, start
        assert end <= start.replace(hour=2, minute=0, second=0, microsecond=0), (start, end)
    # The 6th batch of a night would start at 01:55 and end at 02:06: it waits.
    starts = [as_utc(b.started_at) for b in batch_rows(service, run_id)]
    assert [s.day for s in starts] == [25] * 5 + [26] * 5 + [27] * 2
    assert waits[0] == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert datetime(2026, 11, 27, 1, 0, tzinfo=UTC) in waits
    reasons = [t.reason or "" for t in service.transitions(run_id)]
    assert any("would overrun the window ending at" in r for r in reasons)


def when_statement_runs(engine, fragment: str, action) -> None:
    """Call `action` once, right after the first statement containing `fragment` ran
    (from inside the engine's own operation, as another process would interleave)."""
    fired = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        if fragment in statement and not fired:
            fired.append(True)
            action()


def test_a_run_paused_while_the_scheduler_wakes_it_stays_paused(service, clock):
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch_windowed")
    assert run_in_process(service, run_id, sleep=clock.sleep, wait=False).status == RunStatus.WAITING
    clock.now = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # the window opens: the run is due
    # The operator pauses it between the scheduler's look at the due runs and its move.
    when_statement_runs(service.engine, "next_window_at <=",
                        lambda: service.pause(run_id, actor="operator", reason="not tonight"))
    assert service.wake_due(run_id=run_id) == []
    assert service.get_run(run_id).status == RunStatus.PAUSED
    assert [(t.to_status, t.actor) for t in service.transitions(run_id)][-1] == ("paused", "operator")


def test_adaptive_batch_size_converges_within_bounds(service, clock, monkeypatch):
    monkeypatch.setattr(backfills_for_tests, "SECONDS_PER_ROW", 0.02)  # 50 rows/s -> 50 rows for 1 s
    insert_rows(service.engine, range(1, 1501))
    run_id = service.schedule("test_touch_adaptive")
    assert run_in_process(service, run_id, sleep=clock.sleep).status == RunStatus.COMPLETED
    sizes = [b.batch_size for b in batch_rows(service, run_id)]
    assert sizes[0] == 20 and all(5 <= s <= 200 for s in sizes)
    assert sizes[-2] == pytest.approx(50, abs=3)  # the last batch is whatever is left
    assert touched(service.engine) == {i: 1 for i in range(1, 1501)}


def test_a_tripped_health_check_backs_off_then_continues(service, clock):
    insert_rows(service.engine, range(1, 41))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_flags (name) VALUES ('sick')")
    run_id = service.schedule("test_touch_health")
    progress = run_in_process(service, run_id, sleep=clock.sleep, wait=False)
    run = service.get_run(run_id)
    assert progress.status == RunStatus.WAITING
    assert run.wait_reason == "backing off: the test flag says the database is sick"
    assert as_utc(run.next_window_at) == clock.now + timedelta(seconds=30)
    with service.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM touch_flags")
    assert run_in_process(service, run_id, sleep=clock.sleep).status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in range(1, 41)}
    actors = [t.actor for t in service.transitions(run_id)]
    assert "health check test_flag" in actors and "scheduler" in actors


def test_pause_between_batches(service, clock, monkeypatch):
    slept = []
    monkeypatch.setattr(backfills_for_tests.TouchRows, "pause_seconds", 0.25)
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch")
    run_in_process(service, run_id, sleep=lambda s: (slept.append(s), clock.sleep(s)))
    assert slept.count(0.25) == 3


def test_failed_batches_within_the_tolerated_share_do_not_stop_the_run(service, clock):
    insert_rows(service.engine, range(1, 101))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) VALUES (15)")
    run_id = service.schedule("test_touch_tolerant")
    progress = run_in_process(service, run_id, sleep=clock.sleep)
    assert progress.status == RunStatus.FAILED and progress.batches_failed == 1 and progress.batches_done == 9
    assert "1 batch(es) failed" in service.transitions(run_id)[-1].reason
    counts = touched(service.engine)
    assert all(counts[i] == (0 if 11 <= i <= 20 else 1) for i in counts)
    with service.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM touch_poison")
    service.retry_failed(run_id, actor="test")
    assert run_in_process(service, run_id, sleep=clock.sleep).status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in range(1, 101)}


def test_too_many_failed_batches_fail_the_run_early(service, clock):
    insert_rows(service.engine, range(1, 201))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) SELECT id FROM touch_rows WHERE MOD(id, 20) < 10")
    run_id = service.schedule("test_touch_tolerant")  # every other batch fails
    progress = run_in_process(service, run_id, sleep=clock.sleep)
    assert progress.status == RunStatus.FAILED
    assert progress.batches_failed + progress.batches_done < 20  # stopped before grinding through all 20


@pytest.fixture
def pg_service(db_url):
    """PostgreSQL only (statement_timeout and jit are its settings), a 1 s statement
    timeout (from the 2 s lease)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout and jit are PostgreSQL settings")
    svc = touch_service(db_url, EngineSettings(lease_seconds=2, retry_backoff_seconds=0.01))
    yield svc
    svc.engine.dispose()


def test_a_batch_hitting_the_statement_timeout_is_split(pg_service):
    service = pg_service
    insert_rows(service.engine, range(1, 33))
    run_id = service.schedule("test_touch_pg_sleep")  # 16 rows = 1.6 s per batch: too slow
    assert run_in_process(service, run_id).status == RunStatus.COMPLETED
    assert touched(service.engine) == {i: 1 for i in range(1, 33)}
    batches = batch_rows(service, run_id)
    assert max(b.rows_in_range for b in batches) <= 8
    assert len(batches) >= 4
    assert "split in two after a statement timeout" in service.get_run(run_id).last_error
    assert "canceling statement due to statement timeout" in service.get_run(run_id).last_error


def test_batches_run_under_the_statement_timeout_and_without_jit_and_leave_the_session_as_it_was(pg_service):
    service = pg_service
    insert_rows(service.engine, range(1, 31))
    with service.engine.connect() as connection:
        session_before = connection.execute(sa.text("SHOW statement_timeout")).scalar_one()
    backfills_for_tests.SEEN_PG_SETTINGS.clear()
    run_id = service.schedule("test_touch_pg_settings")
    assert run_in_process(service, run_id).status == RunStatus.COMPLETED
    assert backfills_for_tests.SEEN_PG_SETTINGS == [("off", "1s")] * 3
    with service.engine.connect() as connection:  # SET LOCAL: gone with the batch's transaction
        assert connection.execute(sa.text("SHOW statement_timeout")).scalar_one() == session_before != "1s"


def test_the_dry_runs_sample_batches_run_without_jit_like_the_real_ones(pg_service):
    insert_rows(pg_service.engine, range(1, 31))
    backfills_for_tests.SEEN_PG_SETTINGS.clear()
    report, _plan = pg_service.dry_run("test_touch_pg_settings", samples=2)
    assert report.sample_batches == 2
    assert [jit for jit, _timeout in backfills_for_tests.SEEN_PG_SETTINGS] == ["off", "off"]
    assert touched(pg_service.engine) == {i: 0 for i in range(1, 31)}  # rolled back
