"""An in-process `--batched` that died (issue 21): the next one says whose lease it
waits for and until when, and takes the run over at once when that owner was a
process of this host that no longer exists. Every row exactly once after."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import sqlalchemy as sa

from backend.backfill.clock import utcnow
from backend.backfill.inprocess import gone_from_this_host, run_in_process
from backend.backfill.state import backfill_batches, backfill_runs
from tests.backfill_helpers import FAST_SETTINGS, insert_rows, touch_service, touched
from tests.processes import ROOT, subprocess_env, wait_for

LEASE = 120.0  # the default: what the dead process's lease would make the next one wait


def running_claims(service, pid: int) -> int:
    """Batches running under a claim of process `pid` of this host."""
    prefix = f"{socket.gethostname()}:{pid}:"
    with service.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(backfill_batches).where(
            backfill_batches.c.status == "running", backfill_batches.c.claimed_by.startswith(prefix))).scalar_one()


def test_a_sigkilled_batched_is_taken_over_at_once_and_every_row_done_once(db_url):
    """Killed in the middle of a batch: its run lease and that batch's lease (two
    minutes each) are taken over at once."""
    service = touch_service(db_url, dataclasses.replace(FAST_SETTINGS, lease_seconds=LEASE))
    insert_rows(service.engine, range(1, 101))  # 20 batches of 0.3 s
    run_id = service.schedule("test_touch_slow")
    child = subprocess.Popen(
        [sys.executable, "run_migrations.py", "--batched", "--only", "test_touch_slow"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=subprocess_env(DATABASE_URL=db_url, BACKFILL_MODULES="tests.backfills_for_tests",
                           BACKFILL_LEASE_SECONDS=f"{LEASE:g}"))
    try:
        wait_for(lambda: service.get_run(run_id).rows_done >= 10 and running_claims(service, child.pid),
                 timeout=60, message="the first batches, then one in the middle of its transaction")
    finally:
        child.send_signal(signal.SIGKILL)  # no clean-up: its run lease and its batch's lease stay
        child.wait(10)
    run = service.get_run(run_id)
    assert run.lease_owner.split(":")[1] == str(child.pid) and run.lease_expires_at is not None
    assert gone_from_this_host(run.lease_owner)

    said: list[str] = []
    started = time.monotonic()
    progress = run_in_process(service, run_id, sleep=time.sleep, on_message=said.append)
    assert progress.status == "completed"
    assert time.monotonic() - started < LEASE / 4  # not the dead lease's two minutes
    assert said[0] == (f"backfill test_touch_slow (run {run_id}): its driver {run.lease_owner} is gone from this "
                       "host: taking the run over now")
    assert touched(service.engine) == {i: 1 for i in range(1, 101)}
    service.engine.dispose()


def test_a_lease_held_elsewhere_is_waited_for_until_it_expires_and_says_until_when(sqlite_url):
    service = touch_service(sqlite_url)  # FAST_SETTINGS: 3-second leases
    insert_rows(service.engine, range(1, 21))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    expires = utcnow() + timedelta(seconds=2)
    owner = "another-host:4242:0123abcd"  # not this host: it may be alive, only its lease tells
    with service.engine.begin() as connection:
        connection.execute(sa.update(backfill_runs).where(backfill_runs.c.id == run_id)
                           .values(lease_owner=owner, lease_expires_at=expires))
    assert not gone_from_this_host(owner)
    said: list[str] = []
    progress = run_in_process(service, run_id, sleep=time.sleep, poll_interval=0.1, on_message=said.append)
    assert progress.status == "completed"
    assert said == [f"backfill test_touch (run {run_id}) is driven by another process ({owner}); following it, "
                    f"and taking it over if its lease is not renewed by {expires:%Y-%m-%d %H:%M:%S} UTC"]
    assert utcnow() >= expires  # it did wait
    assert touched(service.engine) == {i: 1 for i in range(1, 21)}
    service.engine.dispose()


def test_a_live_process_of_this_host_is_not_taken_for_dead():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not gone_from_this_host(f"{socket.gethostname()}:{sleeper.pid}:abcd")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert gone_from_this_host(f"{socket.gethostname()}:{sleeper.pid}:abcd")  # reaped: gone
    assert not gone_from_this_host(f"{socket.gethostname()}:{os.getpid()}:abcd")  # this very process
