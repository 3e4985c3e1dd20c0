"""GET /metrics after real runs, on SQLite and PostgreSQL: the text is read back with
prometheus_client's own parser, so a malformed exposition fails too.

The run figures come from the database (backend.metrics.database), the counters from
this process (backend.metrics.events: the runs here are driven in-process); the
counters are compared before and after each run, since other tests count too.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from backend import create_app
from backend.backfill.clock import use_clock, utcnow
from backend.backfill.inprocess import run_in_process
from backend.backfill.model import BatchStatus, RunStatus
from backend.backfill.state import backfill_batches
from backend.config import Config
from backend.db import create_db_engine
from backend.metrics import events
from backend.metrics.database import DatabaseCollector
from backend.metrics.exposition import exposition
from backend.migrations import alembic_api
from tests.backfill_helpers import insert_rows, make_service, operations_app, touch_database, touch_service
from tests.backfills_for_tests import FakeClock

SECRET = "metrics-token-for-tests-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {SECRET}"}
ROWS = 100  # touch_rows 1..100: test_touch runs 10 batches of 10


def make_app(url: str, token: str | None = f"prometheus:{SECRET}", **env: str):
    return operations_app(url, token, **env)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    with touch_database(request, tmp_path_factory, "metrics", ROWS) as url:
        yield url


@pytest.fixture(scope="module")
def service(db_url):
    service = make_service(db_url)
    yield service
    service.engine.dispose()


@pytest.fixture(scope="module")
def client(db_url):
    app = make_app(db_url)
    yield app.test_client()
    app.extensions["db_engine"].dispose()


class Samples(dict):
    """(name, labels) -> value of one scrape."""

    @classmethod
    def parse(cls, text: str) -> "Samples":
        samples = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def get_value(self, name: str, **labels) -> float | None:
        return self.get((name, frozenset((key, str(value)) for key, value in labels.items())))

    def run(self, name: str, run_id: int, backfill: str = "test_touch", **labels) -> float | None:
        return self.get_value(name, backfill=backfill, run_id=run_id, **labels)

    def names(self) -> set[str]:
        return {name for name, _labels in self}


def scrape(client) -> Samples:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")  # the Prometheus text format
    return Samples.parse(response.get_data(as_text=True))


def counted(name: str, **labels) -> float:
    """This process's counter (0 before its first event)."""
    return events.REGISTRY.get_sample_value(name, labels) or 0.0


# --- runs, from the database ---------------------------------------------------------

def test_a_finished_run_is_exported_with_its_rows_batches_and_histograms(client, service):
    succeeded_before = counted("backfill_batch_outcomes_total", outcome="succeeded")
    started = time.time()
    run_id = service.schedule("test_touch")
    assert run_in_process(service, run_id).status == RunStatus.COMPLETED
    samples = scrape(client)

    assert samples.get_value("backfill_metrics_database_up") == 1
    for status in RunStatus.ALL:
        assert samples.run("backfill_run_status", run_id, status=status) == (1 if status == "completed" else 0)
    assert samples.run("backfill_run_rows_done", run_id) == ROWS
    assert samples.run("backfill_run_rows_scanned", run_id) == ROWS
    assert samples.run("backfill_run_rows_total", run_id) == ROWS
    assert samples.run("backfill_run_batches_done", run_id) == 10
    assert samples.run("backfill_run_batches_failed", run_id) == 0
    assert samples.run("backfill_run_batches_in_flight", run_id) == 0
    assert samples.run("backfill_run_batches", run_id, status="succeeded") == 10
    assert samples.run("backfill_run_batch_size", run_id) == 10
    assert samples.run("backfill_run_rows_per_second", run_id) == 0  # finished: not moving
    assert samples.run("backfill_run_eta_seconds", run_id) is None
    assert samples.run("backfill_run_next_window_seconds", run_id) is None
    assert started - 1 <= samples.run("backfill_run_last_batch_finished_timestamp_seconds", run_id) <= time.time() + 1
    assert started - 1 <= samples.run("backfill_run_started_timestamp_seconds", run_id) <= time.time() + 1
    assert samples.get_value("backfill_runs", status="completed") >= 1

    # The histograms, from the succeeded batches' rows: 10 batches of 10 keys.
    assert samples.run("backfill_batch_duration_seconds_count", run_id) == 10
    assert samples.run("backfill_batch_duration_seconds_bucket", run_id, le="+Inf") == 10
    durations = [samples.run("backfill_batch_duration_seconds_bucket", run_id, le=le)
                 for le in ("0.01", "0.1", "1.0", "10.0", "60.0")]
    assert durations == sorted(durations)
    assert samples.run("backfill_batch_rows_count", run_id) == 10
    assert samples.run("backfill_batch_rows_sum", run_id) == ROWS
    assert samples.run("backfill_batch_rows_bucket", run_id, le="1.0") == 0
    assert samples.run("backfill_batch_rows_bucket", run_id, le="10.0") == 10

    # The counters of the process that ran the batches (this one).
    assert samples.get_value("backfill_batch_outcomes_total", outcome="succeeded") == succeeded_before + 10


def test_a_moving_run_has_a_rate_and_an_eta_and_a_waiting_one_its_next_window(client, service):
    clock = FakeClock(utcnow())
    with use_clock(clock):
        run_id = service.schedule("test_touch")
        service.start(run_id, executor="inprocess")
        for batch_id in service.advance(run_id):  # two batches (max_parallel 2): 20 of 100 keys
            assert service.execute(batch_id).kind == "succeeded"
        service.advance(run_id)  # carves the next two: in flight
        clock.sleep(2)  # 20 keys in 2 s: 10 keys/s, 80 keys to go: 8 s
        samples = scrape(client)
    assert samples.run("backfill_run_status", run_id, status="running") == 1
    assert samples.run("backfill_run_rows_scanned", run_id) == 20
    assert samples.run("backfill_run_batches_in_flight", run_id) == 2
    assert samples.run("backfill_run_batches", run_id, status="pending") == 2
    assert samples.run("backfill_run_rows_per_second", run_id) == 10.0
    assert samples.run("backfill_run_eta_seconds", run_id) == 8.0

    overdue = utcnow() - timedelta(minutes=10)
    service.transition(run_id, RunStatus.WAITING, actor="test", reason="outside the window",
                       wait_reason="outside the window", next_window_at=overdue)
    samples = scrape(client)
    assert samples.run("backfill_run_status", run_id, status="waiting") == 1
    assert samples.run("backfill_run_next_window_seconds", run_id) == pytest.approx(-600, abs=30)
    assert samples.run("backfill_run_eta_seconds", run_id) is None
    service.cancel(run_id, actor="test")

    samples = scrape(client)  # the latest run of its backfill: still watched, now cancelled
    assert samples.run("backfill_run_status", run_id, status="cancelled") == 1
    assert samples.run("backfill_run_next_window_seconds", run_id) is None


def test_only_unfinished_runs_and_the_latest_of_each_backfill_are_exported(client, service):
    first = service.schedule("test_touch")
    run_in_process(service, first)
    second = service.schedule("test_touch")
    run_in_process(service, second)
    samples = scrape(client)
    assert samples.run("backfill_run_status", second, status="completed") == 1
    assert samples.run("backfill_run_status", first, status="completed") is None  # superseded
    assert samples.get_value("backfill_runs", status="completed") >= 2  # still counted


def test_failed_batches_are_counted_by_the_process_and_the_run_shows_failed(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    service = touch_service(url)
    insert_rows(service.engine, range(1, 31))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) VALUES (15)")  # batch 2 always fails
    retries, failures = counted("backfill_batch_outcomes_total", outcome="retry"), \
        counted("backfill_batch_outcomes_total", outcome="failed")
    run_id = service.schedule("test_touch")
    assert run_in_process(service, run_id).status == RunStatus.FAILED
    with service.engine.connect() as connection:
        attempts = connection.execute(sa.select(backfill_batches.c.attempts).where(
            backfill_batches.c.run_id == run_id, backfill_batches.c.status == BatchStatus.FAILED)).scalar_one()
    samples = Samples.parse(exposition([DatabaseCollector(service.engine)]).decode())
    service.engine.dispose()

    assert samples.run("backfill_run_status", run_id, status="failed") == 1
    assert samples.run("backfill_run_batches_failed", run_id) == 1
    assert samples.run("backfill_run_batches", run_id, status="failed") == 1
    assert samples.run("backfill_run_batches_done", run_id) == 1  # batch 1; the run failed with batch 2
    assert samples.get_value("backfill_batch_outcomes_total", outcome="retry") == retries + attempts - 1
    assert samples.get_value("backfill_batch_outcomes_total", outcome="failed") == failures + 1


def test_an_unreachable_database_is_reported_not_raised():
    engine = create_db_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
    samples = Samples.parse(exposition([DatabaseCollector(engine)]).decode())
    assert samples.get_value("backfill_metrics_database_up") == 0
    assert not any(name.startswith("backfill_run_") for name in samples.names())


# --- protection --------------------------------------------------------------------------

def test_metrics_need_the_admin_token(db_url, client):
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.get_json()["error"]["code"] == "unauthorized"
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "invalid_token"
    assert "backfill_" not in wrong.get_data(as_text=True)

    app = make_app(db_url, token=None)  # no ADMIN_API_TOKEN: off, never open
    try:
        off = app.test_client().get("/metrics", headers=AUTH)
        assert off.status_code == 503 and off.get_json()["error"]["code"] == "admin_api_disabled"
    finally:
        app.extensions["db_engine"].dispose()


# --- schema changes -------------------------------------------------------------------------

def test_each_revision_applied_is_counted_with_its_duration(tmp_path):
    applied = []
    before = counted("schema_revisions_applied_total", direction="upgrade")
    timed_before = counted("schema_revision_duration_seconds_count", direction="upgrade")
    alembic_api.upgrade(f"sqlite:///{tmp_path / 'shop.db'}", "head",
                        on_version_apply=lambda *, step, **_kw: applied.append(step.up_revision_id))
    assert len(applied) >= 10  # the caller's own callback still hears of each revision
    assert counted("schema_revisions_applied_total", direction="upgrade") == before + len(applied)
    assert counted("schema_revision_duration_seconds_count", direction="upgrade") == timed_before + len(applied)


def test_a_ddl_lock_wait_is_counted(pg_url, monkeypatch):
    """0003's ALTER TABLE orders waits behind a transaction that read orders; it is
    retried after each lock timeout and goes through once the transaction ends."""
    alembic_api.upgrade(pg_url, "0002_backfill_state")
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_MS", "50")
    monkeypatch.setenv("MIGRATION_LOCK_TRIES", "40")
    waits_before = counted("schema_ddl_lock_waits_total")
    engine = create_db_engine(pg_url)
    blocker = engine.connect()
    blocker.execute(sa.text("SELECT count(*) FROM orders"))  # ACCESS SHARE until rollback
    released = threading.Timer(1.0, blocker.rollback)
    released.start()
    try:
        alembic_api.upgrade(pg_url, "0003_orders_total_cents")
    finally:
        released.join()
        blocker.close()
        engine.dispose()
    assert counted("schema_ddl_lock_waits_total") > waits_before


# --- process events: lease takeovers and health-check trips ---------------------------------

def test_lease_takeovers_and_health_check_trips_are_counted(tmp_path):
    service = touch_service(f"sqlite:///{tmp_path / 'shop.db'}")
    insert_rows(service.engine, range(1, 41))
    takeovers = counted("backfill_lease_takeovers_total")
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="celery")
    first, second = service.advance(run_id)

    def abandon(batch_id: int) -> None:
        """As a worker that died holding the batch: running, its lease expired."""
        with service.engine.begin() as connection:
            connection.execute(sa.update(backfill_batches).where(backfill_batches.c.id == batch_id).values(
                status=BatchStatus.RUNNING, claimed_by="dead-host:1:0", attempts=1,
                lease_expires_at=utcnow() - timedelta(seconds=5)))

    abandon(first)
    assert service.execute(first).kind == "succeeded"  # claimed over the expired lease
    assert counted("backfill_lease_takeovers_total") == takeovers + 1
    abandon(second)
    assert service.batches_to_run(run_id) == [second]  # released by recovery, then pending
    assert counted("backfill_lease_takeovers_total") == takeovers + 2
    service.cancel(run_id, actor="test")

    trips = counted("backfill_health_check_trips_total", check="test_flag")
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_flags (name) VALUES ('sick')")
    run_id = service.schedule("test_touch_health")
    service.start(run_id, executor="inprocess")
    assert service.execute(service.advance(run_id)[0]).kind == "waiting"
    assert counted("backfill_health_check_trips_total", check="test_flag") == trips + 1
    service.engine.dispose()


def test_failed_authentications_on_metrics_are_limited_like_the_operations_apis(db_url):
    settings = {"DATABASE_URL": db_url, "BACKFILL_MODULES": "tests.backfills_for_tests",
                "ADMIN_API_TOKEN": f"prometheus:{SECRET}", "ADMIN_AUTH_FAILURE_RATE_LIMIT": "2 per minute"}
    app = create_app(Config.from_env(settings))
    try:
        client = app.test_client()
        wrong = {"Authorization": "Bearer " + "x" * 40}
        assert [client.get("/metrics", headers=wrong).status_code for _ in range(3)] == [401, 401, 429]
        assert client.get("/metrics", headers=AUTH).status_code == 429  # until the window passes
    finally:
        app.extensions["db_engine"].dispose()
