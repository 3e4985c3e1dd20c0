"""The fault soak (issue 17): minutes of random faults over one long backfill, then
the exactly-once check. Not in CI's default run (marker `soak`, deselected unless
`-m soak`, see tests/conftest.py):

    python -m pytest tests/faults/test_soak.py -m soak --soak-minutes 10 [--soak-seed N]

Two workers (concurrency 2, as docker-compose.yml runs them) and beat work on a run
of test_touch_slow sized to outlast the fault phase. Every kind of fault is injected
once in a random order, then kinds are drawn at random (tests/faults/soak.py) until
the minutes are up, one at a time: each must be survived (a batch claimed after it
finishes in bounded time, every worker's main process alive). Then the run must
complete with every row exactly once. The summary goes to tests/faults/soak-last-run.md
(--soak-report) and is printed; docs/reliability.md quotes it.
"""
from __future__ import annotations

import random
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.faults import soak
from tests.faults.support import assert_exactly_once
from tests.processes import ROOT

# test_touch_slow on two workers makes about 28 rows/s without faults (2 batches of 5
# rows at once, 0.3 s asleep each, plus queries); faults cost part of that. Sized so
# that the run is still going when the fault phase ends.
ROWS_PER_FAULT_SECOND = 24
# A batch claimed after the fault must finish within this: a worker start with
# mingle (a few s on a busy machine), lease expiry (3 s), the beat's recovery (1 s),
# kombu's reconnect back-off (up to 6 s) and a batch; generous for a shared machine.
RECOVERY_LIMIT = 60.0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@pytest.mark.soak
@pytest.mark.slow
def test_soak_random_faults_then_exactly_once(stack, pytestconfig):
    minutes = pytestconfig.getoption("--soak-minutes")
    seed = pytestconfig.getoption("--soak-seed")
    seed = random.SystemRandom().randrange(10**6) if seed is None else seed
    report = Path(pytestconfig.getoption("--soak-report"))
    rng = random.Random(seed)
    rows = max(int(minutes * 60 * ROWS_PER_FAULT_SECOND), 500)
    ids = list(range(1, rows + 1))

    started = time.monotonic()
    workers = [stack.worker(concurrency=2, production=True, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    stack.beat()
    run_id = stack.start_run("test_touch_slow", ids)
    run = soak.Soak(stack, run_id, workers, rng)
    tally = soak.Tally()
    first_round = rng.sample(soak.KINDS, len(soak.KINDS))  # every kind at least once
    fault_started = time.monotonic()
    deadline = fault_started + minutes * 60
    outcome, fault_seconds = "not finished", 0.0
    try:
        while time.monotonic() < deadline and stack.run(run_id).status != "completed":
            time.sleep(rng.uniform(2, 8))
            kind = first_round.pop() if first_round else rng.choices(soak.KINDS, soak.WEIGHTS)[0]
            if getattr(run, kind)() is None:
                continue  # the moment did not allow it: not injected
            recovered, problem = run.recovery(datetime.now(timezone.utc), RECOVERY_LIMIT)
            tally.record(kind, recovered, problem)
        fault_seconds = time.monotonic() - fault_started
        finished = stack.wait_finished(run_id, timeout=max(600.0, minutes * 60))
        assert_exactly_once(stack, run_id, ids)
        assert not tally.failures, tally.failures
        assert all(tally.injected[kind] for kind in soak.KINDS), tally.injected
        outcome = (f"every row exactly once ({rows:,} rows), all "
                   f"{sum(tally.injected.values())} faults survived")
    except BaseException as exc:
        outcome = f"FAILED: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
        raise
    finally:
        text = soak.summary(tally=tally, minutes=minutes, seed=seed,
                            fault_seconds=fault_seconds or time.monotonic() - fault_started,
                            total_seconds=time.monotonic() - started, rows=rows, run=stack.run(run_id),
                            worker_restarts=run.worker_restarts, outcome=outcome, commit=_commit())
        report.write_text(text)
        print("\n" + text)
    assert finished.status == "completed"
