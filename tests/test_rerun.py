"""`run_migrations.py --rerun NAME` (issue 21): a new run of a finished backfill,
asked for on a terminal, refused without one unless --yes, and run at once as
`--batched --only NAME` would."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from backend.backfill.inprocess import run_in_process
from backend.cli.rerun import NO_TERMINAL
from tests.backfill_helpers import insert_rows, touch_service, touched
from tests.processes import ROOT, subprocess_env
from tests.test_batched_cli import run_migrations


@pytest.fixture
def completed(sqlite_url):
    """test_touch run once over 30 rows (no pending filter: a new run touches every row again)."""
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 31))
    run_id = service.schedule("test_touch")
    assert run_in_process(service, run_id, sleep=lambda s: None).status == "completed"
    yield sqlite_url, service, run_id
    service.engine.dispose()


def test_without_a_terminal_it_needs_yes_and_says_so_in_one_line(completed):
    url, service, run_id = completed
    refused = run_migrations(url, "--rerun", "test_touch")  # stdin is not a terminal here
    assert refused.returncode == 1 and refused.stderr == f"Error: {NO_TERMINAL}\n"
    assert [run.id for run in service.list_runs(name="test_touch")] == [run_id]
    done = run_migrations(url, "--rerun", "test_touch", "--yes")
    assert done.returncode == 0, done.stderr
    new_run = service.list_runs(name="test_touch")[-1]
    assert new_run.id != run_id and new_run.status == "completed"
    assert f"run {new_run.id} (test_touch) scheduled over every row of touch_rows (it has no pending filter)" \
        in done.stdout
    assert touched(service.engine) == {i: 2 for i in range(1, 31)}  # each row once more, exactly once
    assert service.get_run(run_id).status == "completed"  # the first run's history stays


def run_on_a_terminal(url: str, answer: str) -> subprocess.CompletedProcess:
    """--rerun with its stdin on a pseudo-terminal, answering the question."""
    leader, follower = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "run_migrations.py", "--rerun", "test_touch"], cwd=ROOT, stdin=follower,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(DATABASE_URL=url, BACKFILL_MODULES="tests.backfills_for_tests"))
    os.close(follower)
    os.write(leader, answer.encode() + b"\n")
    try:
        out, err = process.communicate(timeout=120)
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_on_a_terminal_it_asks_first(completed):
    url, service, run_id = completed
    declined = run_on_a_terminal(url, "n")
    assert declined.returncode == 1
    assert "Start a new run of backfill test_touch over every row of touch_rows" in declined.stdout
    assert "not confirmed: no run of test_touch was scheduled" in declined.stderr
    assert len(service.list_runs(name="test_touch")) == 1
    accepted = run_on_a_terminal(url, "y")
    assert accepted.returncode == 0, accepted.stderr
    assert len(service.list_runs(name="test_touch")) == 2
    assert touched(service.engine) == {i: 2 for i in range(1, 31)}


def test_refused_while_a_run_is_unfinished(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 11))
    run_id = service.schedule("test_touch")
    result = run_migrations(sqlite_url, "--rerun", "test_touch", "--yes")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"backfill test_touch has an unfinished run {run_id} (pending)" in result.stderr
    assert f"--cancel {run_id}" in result.stderr
    assert run_migrations(sqlite_url, "--yes").stderr == "Error: --yes goes with --rerun\n"
    service.engine.dispose()
