"""`run_migrations.py --pause/--resume/--cancel/--retry/--log/--dry-run`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from backend.backfill.inprocess import run_in_process
from tests.backfill_helpers import insert_rows, touch_service, touched
from tests.processes import ROOT, subprocess_env
from tests.test_batched_cli import run_migrations


@pytest.fixture
def scene(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 41))
    run_id = service.schedule("test_touch")
    service.start(run_id, executor="inprocess")
    yield sqlite_url, service, run_id
    service.engine.dispose()


def test_pause_resume_and_the_log(scene):
    url, service, run_id = scene
    paused = run_migrations(url, "--pause", "test_touch", "--reason", "black friday")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == f"run {run_id} (test_touch) is now paused\n"
    again = run_migrations(url, "--pause", str(run_id))
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert f"run {run_id} is paused; it cannot become paused" in again.stderr
    blocked = run_migrations(url, "--batched", "--only", "test_touch")
    assert blocked.returncode == 1 and f"python run_migrations.py --resume {run_id}" in blocked.stderr
    assert set(touched(service.engine).values()) == {0}
    resumed = run_migrations(url, "--resume", str(run_id))
    assert resumed.returncode == 0 and "is now running" in resumed.stdout
    assert "python run_migrations.py --batched --only test_touch" in resumed.stdout
    assert run_migrations(url, "--batched", "--only", "test_touch").returncode == 0
    assert touched(service.engine) == {i: 1 for i in range(1, 41)}
    log = run_migrations(url, "--log", str(run_id))
    assert log.returncode == 0
    assert "running -> paused    by cli:" in log.stdout and "(black friday)" in log.stdout
    assert "running -> completed" in log.stdout


def test_cancel_and_retry(scene):
    url, service, run_id = scene
    with service.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO touch_poison (id) VALUES (35)")
    assert run_in_process(service, run_id, sleep=lambda s: None).status == "failed"
    with service.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM touch_poison")
    retried = run_migrations(url, "--retry", "test_touch")
    assert retried.returncode == 0 and "is now running" in retried.stdout
    assert run_in_process(service, run_id, sleep=lambda s: None).status == "completed"
    assert touched(service.engine) == {i: 1 for i in range(1, 41)}
    cancelled = run_migrations(url, "--cancel", str(run_id))
    assert cancelled.returncode == 1 and "completed; it cannot become cancelled" in cancelled.stderr


@pytest.mark.parametrize("args, message", [
    (["--pause", "999999"], "Error: no backfill run 999999"),
    (["--resume", "nope"], "unknown backfill 'nope'"),
    (["--cancel", "x'; DROP TABLE users;--"], "unknown backfill \"x'; DROP TABLE users;--\""),
    (["--reason", "why"], "--reason goes with --pause or --cancel"),
    (["--pause", "1", "--cancel", "1"], "choose one of"),
    (["--dry-run", "nope"], "unknown backfill 'nope'"),
    (["--log", ""], "unknown backfill ''"),
    (["--dry-run", ""], "unknown backfill ''"),
    (["--pause", "99999999999999999999999"], "Error: no backfill run 99999999999999999999999"),
    (["--log", "9223372036854775808"], "Error: no backfill run 9223372036854775808"),
    (["--log", "\u00b2"], "unknown backfill '\u00b2'"),
    (["--retry", "test_touch"], "is running; it cannot become running (only a failed run can be retried)"),
    (["--pause", "test_touch", "--reason", "x" * 501], "--reason must be text of at most 500 characters"),
])
def test_bad_input_is_one_line_and_changes_nothing(scene, args, message):
    url, service, run_id = scene
    before = service.get_run(run_id)
    result = run_migrations(url, *args)
    assert result.returncode != 0
    assert message in result.stderr and result.stderr.strip().count("\n") <= 1
    assert service.get_run(run_id) == before


def test_a_reason_with_an_undecodable_byte_is_refused_in_one_line(scene):
    url, service, run_id = scene
    before = service.get_run(run_id)
    result = subprocess.run([sys.executable, "run_migrations.py", b"--pause", b"test_touch", b"--reason", b"peak \xff"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=subprocess_env(DATABASE_URL=url, BACKFILL_MODULES="tests.backfills_for_tests"))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: --reason must be text") and result.stderr.count("\n") == 1
    assert service.get_run(run_id) == before


def test_only_a_failed_run_can_be_retried(scene):
    url, service, _ = scene
    pending = service.schedule("test_touch_windowed")
    result = run_migrations(url, "--retry", str(pending))
    assert result.returncode == 1
    assert f"run {pending} is pending; it cannot become running (only a failed run can be retried)" in result.stderr
    assert service.get_run(pending).status == "pending"
    assert [t.to_status for t in service.transitions(pending)] == ["pending"]


def test_dry_run_estimates_and_changes_nothing(scene):
    url, service, run_id = scene
    result = run_migrations(url, "--dry-run", "test_touch", MAINTENANCE_WINDOWS="sat,sun 01:00-05:00 Europe/Berlin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("test_touch: 40 rows to do; nothing was changed")
    assert "measured 30 rows in 3 batches of 10" in result.stdout
    assert "expected duration:" in result.stdout
    assert "maintenance windows: 1, from " in result.stdout and "done around" in result.stdout
    assert set(touched(service.engine).values()) == {0}
