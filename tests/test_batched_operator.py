"""What `run_migrations.py --batched` tells its operator (issue 21): a summary of each
run as it ends, also in non-terminal output, and who cancelled a followed run, why,
and what to do next."""
from __future__ import annotations

import getpass
import re
import subprocess
import sys

from tests.backfill_helpers import insert_rows, touch_service, touched
from tests.processes import ROOT, subprocess_env, wait_for
from tests.test_batched_cli import run_migrations

SUMMARY = re.compile(r"backfill (\w+) \(run (\d+)\) (\w+) in ([\dhms. ]+): ([\d,]+) rows scanned, ([\d,]+) changed, "
                     r"([\d,]+) rows/s on average, (\d+) batch(?:es)?, (\d+) retr(?:y|ies)")


def test_each_run_ends_with_its_summary_and_no_dash_rate(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 41))
    run_id = service.schedule("test_touch")
    result = run_migrations(sqlite_url, "--batched", "--only", "test_touch")  # stdout is a pipe: plain lines
    assert result.returncode == 0, result.stderr
    summaries = [m.groups() for m in map(SUMMARY.search, result.stdout.splitlines()) if m]
    assert len(summaries) == 1, result.stdout
    name, run, status, _took, scanned, changed, rate, batches, retries = summaries[0]
    assert (name, int(run), status, scanned, changed, batches, retries) == (
        "test_touch", run_id, "completed", "40", "40", "4", "0")
    assert int(rate.replace(",", "")) > 0
    assert "- rows/s" not in result.stdout
    service.engine.dispose()


def test_a_cancelled_followed_run_says_who_why_and_what_next(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 201))  # 40 batches of 0.3 s: cancelled long before the end
    run_id = service.schedule("test_touch_slow")
    follower = subprocess.Popen(
        [sys.executable, "run_migrations.py", "--batched", "--only", "test_touch_slow"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(DATABASE_URL=sqlite_url, BACKFILL_MODULES="tests.backfills_for_tests"))
    try:
        wait_for(lambda: service.get_run(run_id).rows_done > 0, timeout=60, message="the first batches")
        cancel = run_migrations(sqlite_url, "--cancel", "test_touch_slow", "--reason", "wrong day")
        assert cancel.returncode == 0, cancel.stderr
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 1
    assert err.count("\n") == 1, err
    assert (f"backfill test_touch_slow (run {run_id}) was cancelled by cli:{getpass.getuser()} (wrong day); "
            "`python run_migrations.py --rerun test_touch_slow` starts a new run over the rows still pending") in err
    summary = SUMMARY.search(out)
    assert summary and summary.group(3) == "cancelled", out
    done = sum(touched(service.engine).values())
    assert 0 < done < 200 and int(summary.group(5).replace(",", "")) == done  # each row at most once
    service.engine.dispose()
