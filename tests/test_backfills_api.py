"""The backfill operations API (backend/web/backfills/api.py): every route and error
path on SQLite and PostgreSQL, the ETag/304 path and its query count, the OpenAPI
document (validated, and compared with the app's routes both ways), and
schemathesis against the app with that document.

One database of each kind per module (PostgreSQL migrations take seconds): every
test makes its own runs and only looks at those.
"""
from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from datetime import timedelta

import pytest
import sqlalchemy as sa

from backend.backfill import runs
from backend.backfill.clock import use_clock, utcnow
from backend.backfill.estimate import window_plan
from backend.backfill.model import BatchStatus, RunStatus
from backend.backfill.state import backfill_batches, backfill_runs
from backend.backfill.windows import parse_windows
from backend.config import Config
from backend.web.backfills import view as view
from backend.auth.admin_token import parse_admin_token
from backend.web.backfills.openapi import openapi_document
from tests.backfill_helpers import make_service, operations_app, touch_database
from tests.backfills_for_tests import FakeClock
from tests.conftest import IN_CI

SECRET = "s3cret-token-for-tests-0123456789abcdef"  # 32+ characters: shorter ones are refused
AUTH = {"Authorization": f"Bearer {SECRET}"}
ROWS = 100  # touch_rows ids 1..100: test_touch carves 10 batches of 10


def make_app(url: str, token: str | None = f"ops:{SECRET}", **env: str):
    return operations_app(url, token, **env)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    with touch_database(request, tmp_path_factory, "api", ROWS) as url:
        yield url


@pytest.fixture(scope="module")
def service(db_url):
    service = make_service(db_url)
    yield service
    service.engine.dispose()


@pytest.fixture(scope="module")
def app(db_url):
    app = make_app(db_url)
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


# --- making runs in every state ------------------------------------------------------------

def new_run(service, name: str = "test_touch") -> int:
    """A pending run (created directly: `schedule` would hand back an unfinished one)."""
    backfill = service.catalog.get(name)
    with service.engine.begin() as connection:
        return runs.create_run(connection, name, batch_size=backfill.batch_size,
                               max_parallel=backfill.max_parallel, key_type=backfill.key_type)


def running_run(service, batches: int = 2) -> int:
    """Running on the in-process executor, `batches` batches done, more carved."""
    run_id = new_run(service)
    service.start(run_id, executor="inprocess")
    done = 0
    while done < batches:
        for batch_id in service.advance(run_id):
            if done < batches:
                assert service.execute(batch_id).kind == "succeeded"
                done += 1
    service.advance(run_id)
    return run_id


def failed_run(service) -> int:
    """A run whose batch 1 used its attempts: the run is failed, the error kept."""
    run_id = running_run(service, batches=1)
    with service.engine.begin() as connection:
        batch = connection.execute(
            sa.select(backfill_batches).where(backfill_batches.c.run_id == run_id,
                                              backfill_batches.c.status == BatchStatus.PENDING)
            .order_by(backfill_batches.c.seq).limit(1)
        ).mappings().one()
        message = f"batch {batch['seq']} failed after 3 attempts: PoisonedBatch: poisoned row in range"
        connection.execute(sa.update(backfill_batches).where(backfill_batches.c.id == batch["id"]).values(
            status=BatchStatus.FAILED, attempts=3, error="PoisonedBatch: poisoned row in range", finished_at=utcnow()))
        connection.execute(sa.update(backfill_runs).where(backfill_runs.c.id == run_id).values(
            batches_failed=1, last_error=message))
        runs.transition(connection, run_id, RunStatus.FAILED, reason=message)
    return run_id


def need(module: str):
    """Import a test-only package; skip without it, except in CI, where it must be installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"{module} is not installed ({exc}); CI requires it")
        pytest.skip(f"{module} is not installed")


def error_of(response) -> dict:
    assert response.is_json, response.data
    return response.json["error"]


def status_of(client, run_id: int) -> str:
    return client.get(f"/api/backfills/{run_id}", headers=AUTH).json["status"]


# --- reading --------------------------------------------------------------------------------

def test_list_runs_newest_first_with_status_filter(client, service):
    first, second = running_run(service, batches=1), new_run(service)

    response = client.get("/api/backfills", headers=AUTH)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    ids = [run["id"] for run in response.json["items"]]
    assert ids.index(second) < ids.index(first)
    running = client.get("/api/backfills?status=running", headers=AUTH).json["items"]
    assert first in [run["id"] for run in running] and {run["status"] for run in running} == {"running"}
    pending = client.get("/api/backfills?status=pending", headers=AUTH).json["items"]
    assert second in [run["id"] for run in pending] and first not in [run["id"] for run in pending]

    bad = client.get("/api/backfills?status=runnning", headers=AUTH)
    assert bad.status_code == 400 and error_of(bad)["details"] == {"parameter": "status"}
    assert client.get("/api/backfills?status=", headers=AUTH).status_code == 400


def test_run_progress_has_everything_an_operator_polls_for(client, service):
    run_id = running_run(service, batches=3)

    response = client.get(f"/api/backfills/{run_id}", headers=AUTH)

    assert response.status_code == 200
    run = response.json
    assert (run["id"], run["name"], run["status"], run["executor"]) == (run_id, "test_touch", "running", "inprocess")
    assert (run["rows_done"], run["rows_scanned"], run["rows_total"], run["rows_total_exact"]) == (30, 30, ROWS, True)
    assert run["percent"] == 30.0
    assert (run["batches_done"], run["batches_failed"], run["batches_in_flight"], run["batches_running"]) == (3, 0, 2, 0)
    assert (run["batch_size"], run["max_parallel"]) == (10, 2)
    assert run["actions"] == ["pause", "cancel"]
    assert run["last_error"] is None and run["wait_reason"] is None and run["next_window_at"] is None
    for stamp in ("created_at", "started_at", "updated_at", "heartbeat_at", "measured_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", run[stamp]), stamp
    assert run["finished_at"] is None
    assert set(run) == set(openapi_document()["components"]["schemas"]["Run"]["properties"])


def test_a_batch_longer_than_the_rate_window_counts_with_its_whole_duration(service):
    """One batch of 10 rows that ran 599 s and finished a second before the tick:
    10 rows in 600 s, not 10 rows in the window's 60 s."""
    run_id = new_run(service)
    as_of = view.tick(utcnow())
    with service.engine.begin() as connection:
        runs.transition(connection, run_id, RunStatus.RUNNING, reason="test", rows_total=100,
                        rows_total_exact=True, rows_scanned=10, rows_done=10, key_min="1", key_max="100")
        connection.execute(sa.insert(backfill_batches).values(
            run_id=run_id, seq=1, key_after="0", key_end="10", rows_in_range=10, batch_size=10,
            status=BatchStatus.SUCCEEDED, attempts=1,
            started_at=as_of - timedelta(seconds=600), finished_at=as_of - timedelta(seconds=1)))
        body = view.runs_view(connection, [view.get_run(connection, run_id)], as_of)[0]
    assert body["rows_per_second"] == 0.0  # 0.017 rows/s, rounded
    assert body["eta_seconds"] == round(90 / (10 / 600), 1)


def test_rate_and_eta_come_from_the_batches_finished_in_the_last_minute(service):
    """Measured as of a tick: batches finished after it or more than 60 s before it
    do not count, and the rate runs from the first counted batch's start."""
    run_id = new_run(service)
    as_of = view.tick(utcnow())
    with service.engine.begin() as connection:
        runs.transition(connection, run_id, RunStatus.RUNNING, reason="test", rows_total=1000,
                        rows_total_exact=False, rows_scanned=400, rows_done=390, key_min="1", key_max="1000")
        for seq, (started, finished, rows) in enumerate([
            (-120, -90, 100),  # before the window
            (-30, -20, 100),   # counted: the window starts at its start, 30 s before the tick
            (-20, -5, 100),    # counted
            (-2, 3, 100),      # after the tick
        ], start=1):
            connection.execute(sa.insert(backfill_batches).values(
                run_id=run_id, seq=seq, key_after=str((seq - 1) * 100), key_end=str(seq * 100),
                rows_in_range=rows, batch_size=100, status=BatchStatus.SUCCEEDED, attempts=1,
                started_at=as_of + timedelta(seconds=started), finished_at=as_of + timedelta(seconds=finished)))
        connection.execute(sa.insert(backfill_batches).values(
            run_id=run_id, seq=5, key_after="400", key_end="500", rows_in_range=100, batch_size=100,
            status=BatchStatus.RUNNING, attempts=1))
        run = view.get_run(connection, run_id)
        body = view.runs_view(connection, [run], as_of)[0]

    assert body["rows_per_second"] == round(200 / 30, 1)  # 200 rows since the first one's start
    assert body["eta_seconds"] == round(600 / (200 / 30), 1)
    assert body["eta_at"] == view.iso(as_of + timedelta(seconds=600 / (200 / 30)))
    assert body["measured_at"] == view.iso(as_of)
    assert (body["percent"], body["rows_total_exact"]) == (40.0, False)
    assert (body["batches_in_flight"], body["batches_running"]) == (1, 1)
    assert body["windows_remaining"] is None and body["estimated_finish_at"] is None  # may run at any time

    # Limited to a nightly window: the engine's plan spreads the 90 s left over the windows.
    schedule = parse_windows("daily 01:00-01:01")
    with service.engine.connect() as connection:
        windowed = view.runs_view(connection, [run], as_of, lambda name: schedule)[0]
    plan = window_plan(schedule, as_of, 600 / (200 / 30))
    assert windowed["windows_remaining"] == plan.windows >= 2
    assert windowed["estimated_finish_at"] == view.iso(plan.finish_at)


def test_latest_run_by_name(client, service):
    running_run(service, batches=1)
    newest = new_run(service)

    response = client.get("/api/backfills/by-name/test_touch", headers=AUTH)

    assert response.status_code == 200 and response.json["id"] == newest
    assert response.headers["ETag"]
    for name in ("no_such_backfill", "x" * 101, "nul%00byte"):
        missing = client.get(f"/api/backfills/by-name/{name}", headers=AUTH)
        assert missing.status_code == 404 and error_of(missing)["code"] == "run_not_found", name


def test_unchanged_run_answers_304_and_a_change_gives_a_new_etag(client, service):
    run_id = running_run(service, batches=1)
    first = client.get(f"/api/backfills/{run_id}", headers=AUTH)
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)

    # Twice, so that a tick boundary between the two requests cannot fail the test.
    for _ in range(2):
        again = client.get(f"/api/backfills/{run_id}", headers={**AUTH, "If-None-Match": etag})
        if again.status_code == 200:
            etag = again.headers["ETag"]
            continue
        break
    assert again.status_code == 304
    assert again.data == b"" and again.headers["ETag"] == etag and again.headers["Cache-Control"] == "no-store"
    weak = client.get(f"/api/backfills/{run_id}", headers={**AUTH, "If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code in (304, 200)

    paused = client.post(f"/api/backfills/{run_id}/pause", headers={**AUTH, "If-None-Match": etag})
    assert paused.status_code == 200  # a POST never answers 304
    after = client.get(f"/api/backfills/{run_id}", headers={**AUTH, "If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag and after.json["status"] == "paused"

    # A finished run's representation never changes, so its ETag does not tick.
    client.post(f"/api/backfills/{run_id}/cancel", headers=AUTH)
    final = client.get(f"/api/backfills/{run_id}", headers=AUTH).headers["ETag"]
    assert client.get(f"/api/backfills/{run_id}", headers={**AUTH, "If-None-Match": final}).status_code == 304
    assert client.get("/api/backfills/by-name/test_touch", headers={**AUTH, "If-None-Match": "*"}).status_code == 304


def test_run_list_answers_304_until_a_run_changes(client, service):
    listed = client.get("/api/backfills", headers=AUTH)
    etag = listed.headers["ETag"]
    unchanged = client.get("/api/backfills", headers={**AUTH, "If-None-Match": etag})
    if unchanged.status_code == 200:  # crossed a tick with an active run: once more
        etag = unchanged.headers["ETag"]
        unchanged = client.get("/api/backfills", headers={**AUTH, "If-None-Match": etag})
    assert unchanged.status_code == 304

    new_run(service)
    assert client.get("/api/backfills", headers={**AUTH, "If-None-Match": etag}).status_code == 200


def test_polling_a_run_costs_two_queries_and_a_304_builds_no_body(app, client, service):
    run_id = running_run(service, batches=1)
    statements: list[str] = []
    engine = app.extensions["db_engine"]
    client.get(f"/api/backfills/{run_id}", headers=AUTH)  # connect first: dialect set-up is not polling

    def count(conn, cursor, statement, *args):
        if "backfill_" in statement:  # not SQLite's BEGIN
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        fresh = client.get(f"/api/backfills/{run_id}", headers=AUTH)
        full = len(statements)
        client.get(f"/api/backfills/{run_id}", headers={**AUTH, "If-None-Match": fresh.headers["ETag"]})
        conditional = len(statements) - full
        statements.clear()
        listed = client.get("/api/backfills", headers=AUTH)
        listing = len(statements)
        for _ in range(2):  # twice, so that a tick boundary between the requests cannot fail it
            statements.clear()
            again = client.get("/api/backfills", headers={**AUTH, "If-None-Match": listed.headers["ETag"]})
            conditional_listing = len(statements)
            if again.status_code == 304:
                break
            listed = again
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert full == 2 and conditional == 2, statements
    # The list reads who paused or cancelled its runs (one more query), never for a 304.
    controlled = any(run["status"] in ("paused", "cancelled") for run in listed.json["items"])
    assert listing == (3 if controlled else 2) and conditional_listing == 2, statements


def test_a_claimed_batch_changes_the_etag_though_the_run_row_does_not_change(client, service):
    run_id = running_run(service, batches=1)
    before = client.get(f"/api/backfills/{run_id}", headers=AUTH)
    with service.engine.begin() as connection:  # what runner._claim writes: one batch row, no run row
        first = connection.execute(sa.select(sa.func.min(backfill_batches.c.id)).where(
            backfill_batches.c.run_id == run_id, backfill_batches.c.status == BatchStatus.PENDING)).scalar_one()
        connection.execute(sa.update(backfill_batches).where(backfill_batches.c.id == first)
                           .values(status=BatchStatus.RUNNING))
    after = client.get(f"/api/backfills/{run_id}", headers={**AUTH, "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.json["batches_running"] == before.json["batches_running"] + 1


def test_a_finished_run_reads_the_same_at_every_tick(client, service, monkeypatch):
    run_id = running_run(service, batches=1)
    client.post(f"/api/backfills/{run_id}/cancel", headers=AUTH)
    first = client.get(f"/api/backfills/{run_id}", headers=AUTH)
    later = view.tick() + timedelta(seconds=3 * view.RATE_TICK_SECONDS)
    monkeypatch.setattr(view, "tick", lambda: later)
    second = client.get(f"/api/backfills/{run_id}", headers=AUTH)
    assert second.headers["ETag"] == first.headers["ETag"] and second.data == first.data


def test_batches_are_paginated_in_order_and_filtered_by_status(client, service):
    run_id = failed_run(service)  # 1 succeeded, 1 failed, 1 pending

    page = client.get(f"/api/backfills/{run_id}/batches?limit=2", headers=AUTH)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert [b["seq"] for b in page.json["items"]] == [1, 2] and page.json["next_cursor"] == "2"
    rest = client.get(f"/api/backfills/{run_id}/batches?limit=2&cursor=2", headers=AUTH).json
    assert [b["seq"] for b in rest["items"]] == [3] and rest["next_cursor"] is None
    everything = client.get(f"/api/backfills/{run_id}/batches", headers=AUTH).json["items"]
    assert [b["status"] for b in everything] == ["succeeded", "failed", "pending"]

    failed = client.get(f"/api/backfills/{run_id}/batches?status=failed", headers=AUTH).json
    assert [b["seq"] for b in failed["items"]] == [2] and failed["next_cursor"] is None
    batch = failed["items"][0]
    assert batch["error"] == "PoisonedBatch: poisoned row in range" and batch["attempts"] == 3
    assert (batch["key_after"], batch["key_end"], batch["rows_in_range"]) == ("10", "20", 10)
    assert set(batch) == set(openapi_document()["components"]["schemas"]["Batch"]["properties"])
    assert client.get(f"/api/backfills/{run_id}/batches?status=running", headers=AUTH).json["items"] == []

    for query in ("limit=0", "limit=501", "limit=ten", "limit=-1", "cursor=x", "cursor=-1",
                  "cursor=99999999999", "status=done", "status="):
        bad = client.get(f"/api/backfills/{run_id}/batches?{query}", headers=AUTH)
        assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_request", query


def test_transitions_log_who_and_why(client, service):
    run_id = running_run(service, batches=1)
    client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": "  peak traffic  "})
    client.post(f"/api/backfills/{run_id}/resume", headers=AUTH)

    response = client.get(f"/api/backfills/{run_id}/transitions", headers=AUTH)

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    log = [(t["from_status"], t["to_status"], t["actor"], t["reason"]) for t in response.json["items"]]
    assert log == [
        (None, "pending", "engine", "scheduled"),
        ("pending", "running", "executor inprocess", "started"),
        ("running", "paused", "api:ops", "peak traffic"),
        ("paused", "running", "api:ops", "resumed"),
    ]


# --- a stalled run (issue 17) -------------------------------------------------------------------

def celery_run_with_pending_batches(service, clock: FakeClock) -> int:
    """On the Celery executor at clock.now: 2 batches done, 2 pending that no worker takes."""
    run_id = new_run(service)
    service.start(run_id, executor="celery")
    for batch_id in service.advance(run_id):
        assert service.execute(batch_id).kind == "succeeded"
    assert len(service.advance(run_id)) == 2
    return run_id


def read_run(client, run_id: int, clock: FakeClock, seconds: float) -> dict:
    clock.now += timedelta(seconds=seconds)
    return client.get(f"/api/backfills/{run_id}", headers=AUTH).json


def test_a_run_no_worker_takes_batches_of_is_stalled_with_the_reason(client, service):
    clock = FakeClock(view.tick(utcnow()))
    with use_clock(clock):
        run_id = celery_run_with_pending_batches(service, clock)
        start = view.iso(clock.now)
        healthy = read_run(client, run_id, clock, 10)
        assert healthy["stalled"] is None
        assert healthy["rows_per_second"] > 0 and healthy["eta_seconds"] > 0
        almost = read_run(client, run_id, clock, 19)  # 29 s: not yet
        assert almost["stalled"] is None

        stalled = read_run(client, run_id, clock, 16)  # 45 s without a batch claimed or finished

        assert stalled["status"] == "running"
        assert stalled["stalled"] == {
            "since": start, "seconds": 45, "batches_waiting": 2,
            "reason": "no worker has taken a batch in 45 s although 2 batches are pending: is a worker "
                      "(`celery -A worker worker`) running, and the broker reachable?"}
        assert stalled["rows_per_second"] is None and stalled["eta_seconds"] is None  # nothing pretends
        assert stalled["eta_at"] is None
        listed = client.get("/api/backfills", headers=AUTH).json["items"]
        assert [run["stalled"] for run in listed if run["id"] == run_id] == [stalled["stalled"]]

        # A worker takes a batch again: no longer stalled, the rate is back.
        clock.now += timedelta(seconds=5)
        batch_id = service.batches_to_run(run_id)[0]
        assert service.execute(batch_id).kind == "succeeded"
        moving = read_run(client, run_id, clock, 5)
        assert moving["stalled"] is None and moving["rows_per_second"] > 0

        # Paused on purpose: not stalled, however long.
        service.pause(run_id, actor="test")
        assert read_run(client, run_id, clock, 600)["stalled"] is None


def test_the_stall_threshold_is_the_settings(db_url, service):
    """BACKFILL_STALL_SECONDS moves the threshold (the same setting `--batched` follows)."""
    app = make_app(db_url, BACKFILL_STALL_SECONDS="10")
    try:
        client = app.test_client()
        clock = FakeClock(view.tick(utcnow()))
        with use_clock(clock):
            run_id = celery_run_with_pending_batches(service, clock)
            assert read_run(client, run_id, clock, 9)["stalled"] is None
            stalled = read_run(client, run_id, clock, 3)["stalled"]  # 12 s: stalled at 10, not 30
            assert stalled is not None and 10 <= stalled["seconds"] <= 12  # as of the tick
            service.cancel(run_id, actor="test")
    finally:
        app.extensions["db_engine"].dispose()


def test_a_live_claim_or_nothing_to_take_is_not_a_stall(client, service):
    clock = FakeClock(view.tick(utcnow()))
    with use_clock(clock):
        run_id = celery_run_with_pending_batches(service, clock)
        # A long batch a live worker holds: no stall while its lease lasts.
        with service.engine.begin() as connection:
            connection.execute(sa.update(backfill_batches).where(
                backfill_batches.c.run_id == run_id, backfill_batches.c.status == BatchStatus.PENDING)
                .values(status=BatchStatus.RUNNING, claimed_by="host:1:test",
                        lease_expires_at=clock.now + timedelta(seconds=120)))
        assert read_run(client, run_id, clock, 100)["stalled"] is None
        # Its worker died: once the lease expired, nobody works on it.
        lapsed = read_run(client, run_id, clock, 40)["stalled"]
        assert lapsed is not None and lapsed["batches_waiting"] == 2 and lapsed["seconds"] == 140


def test_a_started_run_no_worker_carved_is_stalled_and_an_inprocess_one_names_its_cause(client, service):
    clock = FakeClock(view.tick(utcnow()))
    with use_clock(clock):
        run_id = new_run(service)
        service.start(run_id, executor="celery")  # the start message went nowhere: no batch carved
        assert read_run(client, run_id, clock, 29)["stalled"] is None
        none_carved = read_run(client, run_id, clock, 1)["stalled"]
        assert none_carved["batches_waiting"] == 0 and "in 30 s (none carved yet)" in none_carved["reason"]

        inprocess = running_run(service, batches=1)  # its `--batched` process is gone
        reason = read_run(client, inprocess, clock, 30)["stalled"]["reason"]
        assert "is `run_migrations.py --batched` still running?" in reason


# --- controls -------------------------------------------------------------------------------

def test_pause_resume_cancel_and_illegal_transitions(client, service):
    run_id = running_run(service, batches=1)

    paused = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": "peak"})
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    assert paused.json["actions"] == ["resume", "cancel"] and paused.headers["ETag"]

    again = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH)
    assert again.status_code == 409
    assert error_of(again)["code"] == "illegal_transition"
    assert f"run {run_id} is paused" in error_of(again)["message"]
    assert error_of(again)["details"] == {"status": "paused", "actions": ["resume", "cancel"]}
    assert client.post(f"/api/backfills/{run_id}/retry", headers=AUTH).status_code == 409

    resumed = client.post(f"/api/backfills/{run_id}/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json["status"] == "running"
    cancelled = client.post(f"/api/backfills/{run_id}/cancel", headers=AUTH, json={"reason": "wrong table"})
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert cancelled.json["actions"] == [] and cancelled.json["finished_at"]
    for action in ("pause", "resume", "cancel", "retry"):
        refused = client.post(f"/api/backfills/{run_id}/{action}", headers=AUTH)
        assert refused.status_code == 409 and error_of(refused)["details"]["actions"] == [], action


def test_resume_applies_to_paused_runs_only(client, service):
    """The engine's machine allows pending -> running, but resuming a pending run
    would skip its start (key bounds): the API refuses it."""
    run_id = new_run(service)

    refused = client.post(f"/api/backfills/{run_id}/resume", headers=AUTH)

    assert refused.status_code == 409
    assert "it cannot become running (only a paused run can be resumed)" in error_of(refused)["message"]
    assert status_of(client, run_id) == "pending"


def test_retry_puts_the_failed_batches_back(client, service):
    run_id = failed_run(service)
    before = client.get(f"/api/backfills/{run_id}", headers=AUTH).json
    assert before["status"] == "failed" and before["actions"] == ["cancel", "retry"]
    assert before["last_error"].startswith("batch 2 failed after 3 attempts")
    assert client.post(f"/api/backfills/{run_id}/resume", headers=AUTH).status_code == 409

    retried = client.post(f"/api/backfills/{run_id}/retry", headers=AUTH)

    assert retried.status_code == 200
    assert (retried.json["status"], retried.json["batches_failed"], retried.json["last_error"]) == ("running", 0, None)
    assert client.get(f"/api/backfills/{run_id}/batches?status=failed", headers=AUTH).json["items"] == []
    log = client.get(f"/api/backfills/{run_id}/transitions", headers=AUTH).json["items"]
    assert (log[-1]["actor"], log[-1]["to_status"]) == ("api:ops", "running")
    assert client.post(f"/api/backfills/{run_id}/retry", headers=AUTH).status_code == 409


@pytest.mark.parametrize("kwargs, message", [
    ({"data": "{not json", "content_type": "application/json"}, "not valid JSON"),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, "not valid JSON"),
    ({"json": ["peak"]}, "must be a JSON object"),
    ({"json": "peak"}, "must be a JSON object"),
    ({"json": {"reason": "peak", "by": "me"}}, "unknown field(s): by"),
    ({"json": {"reason": 42}}, "reason must be a string"),
    ({"json": {"reason": "x\u0000y"}}, "reason must be a string"),
    ({"json": {"reason": "x" * 501}}, "at most 500 characters"),
    ({"json": {"reason": " " * 501}}, "at most 500 characters"),
    ({"data": "[" * 100000 + "]" * 100000, "content_type": "application/json"}, "not valid JSON"),
])
def test_malformed_control_bodies_are_400_and_change_nothing(client, service, kwargs, message):
    run_id = running_run(service, batches=1)

    response = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, **kwargs)

    assert response.status_code == 400, response.json
    assert message in error_of(response)["message"]
    assert status_of(client, run_id) == "running"


def test_a_control_body_not_declared_as_json_is_415_as_in_the_shop_api(client, service):
    run_id = running_run(service, batches=1)

    response = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, data="reason=x",
                           content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error_of(response)["message"]
    assert status_of(client, run_id) == "running"


def test_field_errors_name_each_field_with_its_message_as_in_the_shop_api(client, service):
    run_id = running_run(service, batches=1)

    unknown = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": "x", "by": "me"})
    too_long = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": "x" * 501})

    assert error_of(unknown)["details"] == {"fields": {"by": "unknown field"}}
    assert error_of(too_long)["details"] == {"fields": {"reason": "reason must be at most 500 characters"}}


def test_resume_and_retry_take_no_reason(client, service):
    run_id = running_run(service, batches=1)
    client.post(f"/api/backfills/{run_id}/pause", headers=AUTH)

    refused = client.post(f"/api/backfills/{run_id}/resume", headers=AUTH, json={"reason": "after lunch"})
    assert refused.status_code == 400 and "resume takes no reason" in error_of(refused)["message"]
    assert status_of(client, run_id) == "paused"
    for body in ({"json": {}}, {"data": "", "content_type": "application/json"}, {"data": "  "}):
        client.post(f"/api/backfills/{run_id}/pause", headers=AUTH)
        assert client.post(f"/api/backfills/{run_id}/resume", headers=AUTH, **body).status_code == 200, body
    assert client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": None}).status_code == 200


def test_controls_of_celery_runs_dispatch_their_batches_at_once(db_url, service, monkeypatch):
    """Through wsgi.create_app, as gunicorn builds the app: with a broker configured it
    hands the app the Celery dispatcher, whose sending (worker.tasks.dispatch) is replaced."""
    import worker.tasks
    import wsgi

    sent: list[list[int]] = []
    monkeypatch.setattr(worker.tasks, "dispatch", lambda ids, *a, **k: sent.append(list(ids)))
    app = wsgi.create_app(Config.from_env({  # the broker is never reached: dispatch is replaced
        "DATABASE_URL": db_url, "BACKFILL_MODULES": "tests.backfills_for_tests", "ADMIN_API_TOKEN": f"ops:{SECRET}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}))
    client = app.test_client()
    try:
        run_id = new_run(service)
        service.start(run_id, executor="celery")
        first = service.advance(run_id)
        client.post(f"/api/backfills/{run_id}/pause", headers=AUTH)
        assert sent == []

        resumed = client.post(f"/api/backfills/{run_id}/resume", headers=AUTH)

        assert resumed.status_code == 200
        assert len(sent) == 1 and set(first) <= set(sent[0])

        def unreachable(ids, *args, **kwargs):
            raise ConnectionError("broker down")

        monkeypatch.setattr(worker.tasks, "dispatch", unreachable)
        client.post(f"/api/backfills/{run_id}/pause", headers=AUTH)
        resumed = client.post(f"/api/backfills/{run_id}/resume", headers=AUTH)
        assert resumed.status_code == 200 and resumed.json["status"] == "running"  # the beat re-sends later
    finally:
        app.extensions["db_engine"].dispose()


# --- authentication and errors ------------------------------------------------------------------

def backfill_routes(app) -> list[tuple[str, str]]:
    """(method, URL with run id 1) of every /api/backfills route."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/backfills"):
            url = re.sub(r"<[^>]*run_id>", "1", rule.rule).replace("<name>", "test_touch")
            found += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_every_route_needs_the_token(app, client):
    routes = backfill_routes(app)
    assert len(routes) == 9
    for method, url in routes:
        missing = client.open(url, method=method)
        assert missing.status_code == 401, (method, url)
        assert error_of(missing)["code"] == "unauthorized"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        for header in (f"Bearer {SECRET}x", f"Bearer {SECRET[:-1]}", f"Bearer ops:{SECRET}", f"Basic {SECRET}",
                       "Bearer", f"bearer  {SECRET}x", "Bearer é"):
            wrong = client.open(url, method=method, headers={"Authorization": header})
            assert wrong.status_code == 401, (method, url, header)
            assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/backfills", headers={"Authorization": f"bearer {SECRET}"}).status_code == 200


def test_without_a_configured_token_the_api_is_off(db_url):
    for token in (None, "", "   "):
        app = make_app(db_url, token=token)
        client = app.test_client()
        try:
            for method, url in backfill_routes(app):
                for headers in ({}, AUTH, {"Authorization": "Bearer "}):
                    response = client.open(url, method=method, headers=headers)
                    assert response.status_code == 503, (token, method, url)
                    assert error_of(response)["code"] == "admin_api_disabled"
                    assert "ADMIN_API_TOKEN" in error_of(response)["message"]
            assert client.get("/admin/backfills").status_code == 200  # the page holds no data
        finally:
            app.extensions["db_engine"].dispose()


def test_a_bare_token_acts_as_admin(db_url, service):
    app = make_app(db_url, token=SECRET)
    client = app.test_client()
    try:
        run_id = running_run(service, batches=1)
        assert client.post(f"/api/backfills/{run_id}/pause", headers=AUTH).status_code == 200
        log = client.get(f"/api/backfills/{run_id}/transitions", headers=AUTH).json["items"]
        assert log[-1]["actor"] == "api:admin"
    finally:
        app.extensions["db_engine"].dispose()


def test_admin_token_setting_forms():
    assert parse_admin_token(None) is None and parse_admin_token(" ") is None
    assert parse_admin_token("abc123") == ("admin", "abc123")
    assert parse_admin_token(" ops:abc:123 ") == ("ops", "abc:123")
    assert parse_admin_token("alice@example.com:tok") == ("alice@example.com", "tok")
    assert parse_admin_token(":tok") == ("admin", ":tok")
    assert parse_admin_token("ops:") == ("admin", "ops:")


def test_unknown_and_impossible_ids_are_json_404s(client):
    unknown = 10**12
    for method, template in [("GET", "/api/backfills/{}"), ("GET", "/api/backfills/{}/batches"),
                             ("GET", "/api/backfills/{}/transitions"), ("POST", "/api/backfills/{}/pause"),
                             ("POST", "/api/backfills/{}/resume"), ("POST", "/api/backfills/{}/cancel"),
                             ("POST", "/api/backfills/{}/retry")]:
        response = client.open(template.format(unknown), method=method, headers=AUTH)
        assert response.status_code == 404 and error_of(response)["code"] == "run_not_found", template
        assert str(unknown) in error_of(response)["message"]
        for impossible in (2**63, 2**64 + 1, 10**40, 0, -1, "abc", "1.5", "%20"):
            response = client.open(template.format(impossible), method=method, headers=AUTH)
            assert response.status_code == 404 and error_of(response)["code"] == "not_found", (template, impossible)
    assert client.get("/api/backfills/by-name/", headers=AUTH).status_code == 404
    assert client.delete("/api/backfills/1", headers=AUTH).status_code == 405


# --- the status page --------------------------------------------------------------------------

def test_status_page_is_served_without_data_or_token(client):
    page = client.get("/admin/backfills")

    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<progress" in html and 'aria-live="polite"' in html and '<label for="token">' in html
    for label in ("Pause", "Resume", "Cancel", "Retry"):
        assert re.search(f'<button type="button" data-action="{label.lower()}"[^>]*>{label}</button>', html)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html))  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # nor inline event handlers
    script = client.get("/static/backfills/status.js")
    assert script.status_code == 200 and b"If-None-Match" in script.data and b"Storage" not in script.data
    # Only a token the API called read-only goes to localStorage (page.py: the trade-off).
    tokens = client.get("/static/backfills/token.js").data
    assert re.findall(rb"localStorage\.setItem\(([A-Z_]+)", tokens) == [b"READ_TOKEN_KEY"]
    assert b'if (access === "read" && typed)' in tokens and b"sessionStorage.setItem(TAB_KEY" in tokens
    assert client.get("/static/backfills/status.css").status_code == 200


def run_page_wording(run: dict) -> dict:
    """backend/web/static/backfills/format.js, the page's wording, run in Node on `run`."""
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is not installed; CI requires it for the status page's wording")
        pytest.skip("node is not installed")
    script = ("const f = require(process.argv[1]); const run = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify({rate: f.rateText(run), eta: f.etaText(run), stalled: f.stalledText(run)}))")
    path = str(view_static("format.js"))
    out = subprocess.run([node, "-e", script, path, json.dumps(run)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def view_static(name: str):
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "backend" / "web" / "static" / "backfills" / name


def test_status_page_shows_a_stalled_run_prominently_and_no_rate(client, service):
    html = client.get("/admin/backfills").get_data(as_text=True)
    notice = re.search(r'<p class="stalled" data-field="stalled"[^>]*hidden></p>\s*'
                       r'(<p class="control" data-field="control" hidden></p>\s*)?<div class="bar">', html)
    assert notice, "the notice sits at the top of each run's card, above the progress bar"
    scripts = [html.index(f"backfills/{name}.js") for name in ("format", "token", "card", "status")]
    assert scripts == sorted(scripts)  # all deferred, run in this order
    script = view_static("card.js").read_text()
    assert 'field(card, "stalled")' in script and "format.stalledText(run)" in script
    assert not any("innerHTML" in view_static(name).read_text()
                   for name in ("status.js", "card.js", "format.js", "token.js"))

    clock = FakeClock(view.tick(utcnow()))
    with use_clock(clock):
        run_id = celery_run_with_pending_batches(service, clock)
        healthy = read_run(client, run_id, clock, 10)
        stalled = read_run(client, run_id, clock, 35)

    shown = run_page_wording(stalled)
    assert shown["stalled"].startswith("Stalled since ")
    assert shown["stalled"].endswith(stalled["stalled"]["reason"] + " The batches wait safely in the database.")
    assert shown["rate"] == "stalled: nothing done for 45 s" and "rows/s" not in shown["rate"]
    assert shown["eta"] == "unknown while stalled"
    moving = run_page_wording(healthy)
    assert moving["stalled"] == "" and moving["rate"].endswith(" rows/s") and moving["rate"] != "— rows/s"
    assert re.fullmatch(r"\d+ (s|min \d+ s) \(about .+\)", moving["eta"]), moving["eta"]


# --- the OpenAPI document -------------------------------------------------------------------------

def test_openapi_document_is_valid_3_1():
    need("openapi_spec_validator")
    from openapi_spec_validator import validate
    from openapi_spec_validator.versions.shortcuts import get_spec_version

    document = openapi_document()
    validate(document)
    assert str(get_spec_version(document)).endswith("3.1")


def test_openapi_document_and_routes_list_the_same_operations(app, client):
    served = client.get("/api/openapi.json")
    assert served.status_code == 200 and served.json == openapi_document()

    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/backfills"):
            path = re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule.rule)
            routes |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(method, path) for path, item in served.json["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    assert routes == documented
    assert all(path.startswith("/api/backfills") for _, path in documented)


# --- schemathesis against the app ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_app(db_url, service):
    """A few runs in each state, so that examples hit real ids too."""
    running_run(service, batches=1)
    failed_run(service)
    paused = running_run(service, batches=1)
    service.pause(paused, actor="test")
    return make_app(db_url)


def test_schemathesis_finds_no_mismatch_with_the_document(fuzz_app):
    """Valid requests (positive) must get documented answers; invalid ones (negative:
    wrong types, out-of-range ids, bad bodies) must be rejected with a documented 4xx.
    The default checks include: no 5xx, documented status codes, headers and bodies
    that match their schemas, and `ignored_auth` (the same request without the
    token must be refused)."""
    schemathesis = need("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=8, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                case.call_and_validate(headers=dict(AUTH))

            try:
                check()
            except Exception as exc:  # every operation's failures, not only the first
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    fuzz_app.extensions["db_engine"].dispose()
    assert not failures, "\n\n".join(failures)
