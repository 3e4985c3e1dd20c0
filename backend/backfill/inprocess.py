"""The in-process executor for the embedded default (SQLite, no broker).

The process that drives a run holds the run's lease (renewed once a third of it
has passed, not after every batch: it is a write of its own), so that two
`run_migrations.py --batched` started at once do not both drive it: the second one
waits and follows until the run is finished, or takes over when the first one died:
at once when the lease's owner was a process of this host that no longer exists
(killed, out of memory), else when its lease expires. It says which of the two. Outside its maintenance
windows the run waits (status `waiting`); this executor sleeps until the next
opening, or with `wait=False` returns and leaves the run waiting.

Its batches run in lanes (lanes.py): up to the run's `max_parallel` at once, each on a
connection of its own, capped by `BACKFILL_INPROCESS_LANES` (default: the number of
CPU cores) and by the engine's pool; SQLite has one writer, so one lane. Ctrl-C or
SIGTERM lets the lanes finish their batches, releases the lease and exits: the next
`--batched` continues from there.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from backend.backfill import batches, runs
from backend.backfill.clock import as_utc, utcnow
from backend.backfill.lanes import Lanes
from backend.backfill.progress import Progress
from backend.backfill.runner import new_claim_token
from backend.backfill.service import BackfillService
from backend.metrics import events
from backend.backfill.model import RunStatus
from backend.interrupts import sigterm_unwinds

ProgressCallback = Callable[[Progress], None]
WaitCallback = Callable[[Progress, datetime], None]
MessageCallback = Callable[[str], None]
# Wake at least this often while waiting, to notice a pause, cancel or config change.
MAX_SLEEP_SECONDS = 60.0


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lease when this process could not take it."""

    owner: str
    expires_at: datetime | None
    taken_over: bool = False  # its process was gone from this host: the lease is ours now


def process_prefix(token: str) -> str:
    """`host:pid:` of a claim token (runner.new_claim_token: host:pid:random): what
    every token of that process starts with."""
    host, _, rest = token.partition(":")
    return f"{host}:{rest.partition(':')[0]}:"


def gone_from_this_host(owner: str) -> bool:
    """True when the lease owner (a claim token) names a process of this host that
    no longer exists, or only as a zombie."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    try:
        with open(f"/proc/{pid}/stat") as stat:  # killed but not yet reaped by its parent
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class RunLease:
    """This process's claim to drive a run: taken, renewed when a third of it has
    passed, released at the end. `holder`: who has it when this process could not
    take it (or from whom it was taken over)."""

    def __init__(self, service: BackfillService, run_id: int):
        self.service, self.run_id = service, run_id
        self.owner = new_claim_token()
        self.holder: Holder | None = None
        self._renew_at: datetime | None = None
        self._released = False
        self._lock = threading.Lock()  # lanes renew it from their threads

    def hold(self) -> bool:
        """True while this process holds the lease (taking or renewing it when due);
        never again once released (a lane still finishing must not take it back)."""
        with self._lock:
            return not self._released and self._hold()

    def _hold(self) -> bool:
        now = utcnow()
        if self._renew_at is not None and now < self._renew_at:
            return True
        seconds = self.service.settings.lease_seconds
        with self.service.engine.begin() as connection:
            taken = runs.take_lease(connection, self.run_id, self.owner, now, seconds)
            if not taken:
                run = runs.get_run(connection, self.run_id)
                owner = run.lease_owner or ""
                taken = gone_from_this_host(owner) and runs.take_lease(
                    connection, self.run_id, self.owner, now, seconds, dead_owner=owner)
                if taken:  # the batches it was running died with it: pending again now
                    events.lease_taken_over(batches.release_expired_leases(
                        connection, self.run_id, now, gone_claimant=process_prefix(owner)))
                self.holder = Holder(owner, as_utc(run.lease_expires_at), taken_over=taken)
        self._renew_at = now + timedelta(seconds=seconds / 3) if taken else None
        return taken

    def release(self) -> None:
        with self._lock:
            self._renew_at, self._released = None, True
        with self.service.engine.begin() as connection:
            runs.release_lease(connection, self.run_id, self.owner)


def lane_count(service: BackfillService, max_parallel: int, wanted: int | None = None) -> int:
    """How many batches of a run this process runs at once: the run's max_parallel,
    capped by `wanted`, else BACKFILL_INPROCESS_LANES, else the CPU cores, and by the
    pool's room (one connection left for the driver); 1 on SQLite (one writer)."""
    if service.engine.dialect.name == "sqlite":
        return 1
    wanted = wanted or service.settings.inprocess_lanes or os.cpu_count() or 1
    return max(1, min(wanted, max_parallel, _pool_room(service.engine) - 1))


def _pool_room(engine: Engine) -> int:
    """Connections the engine's pool hands out at once (QueuePool: size + overflow)."""
    pool = engine.pool
    if isinstance(pool, QueuePool) and pool._max_overflow >= 0:
        return pool.size() + pool._max_overflow
    return 1 << 16


def run_in_process(service: BackfillService, run_id: int, *, on_progress: ProgressCallback | None = None,
                   on_wait: WaitCallback | None = None, wait: bool = True,
                   sleep: Callable[[float], None] = time.sleep, poll_interval: float = 0.5,
                   lanes: int | None = None, on_message: MessageCallback | None = None) -> Progress:
    """Drive the run in lanes of batches in this process until it is no longer running
    (or, with wait=False, until it has to wait for a window or for health).
    `lanes` overrides the setting (still capped by max_parallel; 1 on SQLite).
    `on_message` hears whose lease this process waits for, and until when."""
    lease = RunLease(service, run_id)
    told: Holder | None = None
    run = service.start(run_id, executor="inprocess")
    service.wake_due(run_id=run_id)  # a waiting run whose window has opened since: even with wait=False
    count = lane_count(service, run.max_parallel, lanes)
    announced: datetime | None = None
    try:
        with sigterm_unwinds():
            while True:
                progress = service.snapshot(run_id)
                if on_progress:
                    on_progress(progress)
                if progress.status == RunStatus.WAITING:
                    until = as_utc(service.get_run(run_id).next_window_at) or utcnow()
                    if not wait:
                        return progress
                    if on_wait and until != announced:
                        on_wait(progress, until)
                        announced = until
                    sleep(min(max((until - utcnow()).total_seconds(), 0.0), MAX_SLEEP_SECONDS))
                    service.wake_due(run_id=run_id)
                    continue
                if progress.status != RunStatus.RUNNING:
                    return progress
                held = lease.hold()
                if on_message and lease.holder is not None and (told is None or told.owner != lease.holder.owner
                                                                or told.taken_over != lease.holder.taken_over):
                    on_message(lease_line(progress, lease.holder))
                    told = lease.holder
                if not held:
                    sleep(poll_interval)  # another live process drives it: follow
                    continue
                ticker = (lambda: on_progress(service.snapshot(run_id))) if on_progress else (lambda: None)
                ran = Lanes(service, run_id, lease, count, sleep=sleep, tick=ticker,
                            tick_seconds=max(poll_interval, 0.1)).run()
                if not ran and service.get_run(run_id).status == RunStatus.RUNNING:
                    sleep(poll_interval)  # its batches are held by others for now
    finally:
        lease.release()


def lease_line(progress: Progress, holder: Holder) -> str:
    """Whose lease this process waits for and until when, or that it took it over."""
    run = f"backfill {progress.name} (run {progress.run_id})"
    if holder.taken_over:
        return f"{run}: its driver {holder.owner} is gone from this host: taking the run over now"
    until = f"{holder.expires_at:%Y-%m-%d %H:%M:%S} UTC" if holder.expires_at else "its lease expires"
    return (f"{run} is driven by another process ({holder.owner}); following it, and taking it over "
            f"if its lease is not renewed by {until}")
