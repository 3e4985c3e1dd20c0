"""Faults 4 and 5: the database side goes away under the workers.

4. The worker's session is terminated (pg_terminate_backend) while its batch
   transaction is open: the transaction rolls back, the failure is recorded, the
   batch is retried and applied once.
5. PostgreSQL refuses new connections for a while (the database's CONNECTION LIMIT
   set to 0 and the workers' sessions terminated): the workers' tasks fail, the run
   must neither lose nor double a batch nor burn its attempts, and continue once
   connections are allowed again. The workers connect as a non-superuser role made
   for the test, since superusers are exempt from CONNECTION LIMIT.
"""
from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from backend.backfill.model import BatchStatus, RunStatus
from tests.conftest import POSTGRES_ADMIN_URL, _admin_engine, create_pg_database, drop_pg_database
from tests.faults.support import FaultStack, assert_exactly_once, unique_name, wait_until

IDS = list(range(1, 61))  # 12 batches of 5
OUTSIDE = [900, 901]
FEW_IDS = list(range(1, 31))  # 6 batches of 5


@pytest.mark.slow
def test_connection_terminated_mid_batch_is_retried_and_applied_once(stack):
    worker = stack.worker(concurrency=1)
    run_id = stack.start_run("test_touch_slow", FEW_IDS, outside=OUTSIDE)
    open_tx, owner = stack.freeze_inside_batch(worker.pool_children)
    try:
        batch = stack.batch_claimed_by(run_id, owner)
        with stack.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                      {"pid": open_tx.backend_pid}).scalar()
        stack.wait_backend_gone(open_tx.backend_pid)
    finally:
        os.kill(owner, signal.SIGCONT)  # it wakes up inside a transaction whose session is gone
    stack.wait_finished(run_id)
    assert_exactly_once(stack, run_id, FEW_IDS, OUTSIDE)
    retried = stack.batch(batch.id)
    assert retried.attempts == 2, retried  # the terminated attempt, then the one that committed
    assert worker.process.poll() is None  # the worker survived its connection
    assert "connection" in (stack.run(run_id).last_error or ""), stack.run(run_id)  # why it was retried


# --- fault 5: one scenario, observed by two tests -------------------------------------

REFUSED = "too many connections for database"


def refused(worker, task: str) -> int:
    """`worker.tasks.<task>` runs that the database refused: a batch task backs off
    and retries (logging why); the recovery task raises."""
    lines = worker.log().splitlines()
    if task == "run_batch":
        return sum(1 for line in lines if "database unreachable" in line and REFUSED in line)
    return sum(1 for line in lines
               if f"Task worker.tasks.{task}[" in line and "raised unexpected" in line and REFUSED in line)


def _admin(statement: str, **params) -> list:
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            result = connection.execute(sa.text(statement), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def refused_connections(postgres_available, redis_binary, tmp_path_factory):
    """Runs the scenario once; returns what was observed during and after it."""
    role = unique_name("fault_worker")
    url = create_pg_database()
    database = make_url(url).database
    worker_url = make_url(POSTGRES_ADMIN_URL).set(username=role, password=None, database=database) \
        .render_as_string(hide_password=False)
    _admin(f'CREATE ROLE "{role}" LOGIN')
    stack = None
    try:
        stack = FaultStack(url, tmp_path_factory.mktemp("refused"), worker_url=worker_url)
        with stack.engine.begin() as connection:
            for grant in (f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"',
                          f'GRANT USAGE ON SCHEMA public TO "{role}"',
                          f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
                          f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'):
                connection.exec_driver_sql(grant)
        workers = [stack.worker(), stack.worker()]
        stack.beat()
        run_id = stack.start_run("test_touch_slow", IDS, outside=OUTSIDE)
        stack.wait_run(run_id, lambda run: run.batches_done >= 2, "two batches done")

        _admin(f'ALTER DATABASE "{database}" CONNECTION LIMIT 0')
        _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND usename = :role",
               db=database, role=role)
        # Batch tasks and then several of the beat's recovery passes meet the refusal.
        wait_until(lambda: sum(refused(w, "run_batch") for w in workers) >= 1
                   and sum(refused(w, "recover") for w in workers) >= 3, 30,
                   "batch tasks and three recovery passes to be refused", diagnostics=stack.logs)
        during = {"run": stack.run(run_id), "batches": stack.batches(run_id)}
        _admin(f'ALTER DATABASE "{database}" CONNECTION LIMIT -1')

        stack.wait_finished(run_id, timeout=60)
        yield {"stack": stack, "run_id": run_id, "during": during, "logs": stack.logs()}
    finally:
        if stack is not None:
            stack.close()
        drop_pg_database(url)
        _admin(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.slow
def test_refused_connections_the_run_waits_and_completes_exactly_once(refused_connections):
    stack, run_id, during = refused_connections["stack"], refused_connections["run_id"], refused_connections["during"]
    assert during["run"].status == RunStatus.RUNNING  # not failed while the database refused
    assert BatchStatus.FAILED not in {b.status for b in during["batches"]}
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)


@pytest.mark.slow
def test_refused_connections_the_reason_is_visible_in_the_runs_state(refused_connections):
    stack, run_id = refused_connections["stack"], refused_connections["run_id"]
    run = stack.run(run_id)
    texts = [run.last_error, run.wait_reason, *(b.error for b in stack.batches(run_id)),
             *(t.reason for t in stack.transitions(run_id))]
    assert any(text and ("connection" in text.lower()) for text in texts), texts
