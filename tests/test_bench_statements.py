"""`python -m bench.statements`: the per-statement profile behind docs/performance.md's "where the
time goes". It must run both executors to completion and account for every batch."""
from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from bench.statements import StatementTimer, label, markdown
from tests.conftest import POSTGRES_ADMIN_URL
from tests.processes import ROOT, subprocess_env


@pytest.mark.parametrize("executor", ["inprocess", "worker"])
def test_profile_accounts_for_every_batch(postgres_available, executor):
    done = subprocess.run(
        [sys.executable, "-m", "bench.statements", "--rows", "3000", "--batch-size", "500", "--executor", executor,
         "--top", "50", "--database-url", POSTGRES_ADMIN_URL],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    header = re.match(rf"{executor}: run completed, 3,000 rows in (\d+) batches", done.stdout)
    assert header, done.stdout
    batches = int(header.group(1))
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in done.stdout.splitlines()
            if line.startswith("| ")}
    [update] = [cells for name, cells in rows.items() if name.startswith("UPDATE orders SET total_cents")]
    assert int(update[1]) == batches  # one batch statement per batch, none lost or repeated
    assert int(rows["COMMIT"][1]) >= batches
    assert "(Python: the rest of the wall time)" in rows


def test_timer_groups_statements_by_text_and_times_commits(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'timed.db'}")
    timer = StatementTimer().attach(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        for value in (1, 2, 3):
            connection.execute(sa.text("INSERT INTO t (id)\n   VALUES (:v)"), {"v": value})
    engine.dispose()
    assert timer.timings["INSERT INTO t (id) VALUES (?)"].count == 3
    assert timer.timings["COMMIT"].count == 1
    assert timer.total_seconds == pytest.approx(sum(t.seconds for t in timer.timings.values()))
    assert label("SELECT " + "x, " * 100).endswith("...") and len(label("SELECT " + "x, " * 100)) == 90


def test_markdown_escapes_pipes_and_lists_the_rest_as_python():
    timer = StatementTimer()
    timer.add("SELECT a || b", 0.5)
    run = SimpleNamespace(status="completed", rows_done=10, batches_done=2)  # the fields of a Run it reads
    table = markdown({"executor": "worker", "wall_s": 2.0, "run": run, "timings": dict(timer.timings),
                      "statements_s": 0.5}, top=5)
    assert "| `SELECT a \\|\\| b` | 1 | 500.0 | 500.00 | 250.00 | 25.0% |" in table
    assert "| (Python: the rest of the wall time) | | 1,500.0 | | 750.00 | 75.0% |" in table


@pytest.mark.parametrize("module", ["bench", "bench.statements"])
def test_an_unreachable_server_is_a_one_line_error(module):
    done = subprocess.run(
        [sys.executable, "-m", module, "--rows", "10", "--database-url", "postgresql://nobody:secret@127.0.0.1:1/x"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        'error: cannot create a scratch database on postgresql://nobody:***@127.0.0.1:1/x: '
        'connection to server at "127.0.0.1", port 1 failed: Connection refused']
