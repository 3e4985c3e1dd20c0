"""`python -m bench.upgrade`: the attribution of shop statements and lock waits to the
upgrade's steps (pure functions), the command line's one-line errors, and one real
run at a tiny size against PostgreSQL. Times are never asserted: they are the
benchmark's business."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bench.upgrade import cli, report
from bench.upgrade.attribution import LockWait, Statement, attribute, locate, overall
from bench.upgrade.timeline import (BACKFILL, BASELINE, OTHER, REVISION, BackfillRun, Segment, applied_times,
                                    build_segments, commit_times)
from tests.conftest import POSTGRES_ADMIN_URL
from tests.processes import ROOT, subprocess_env

REVS = ["r3", "r4", "r5", "r6"]


# --- the time line --------------------------------------------------------------------

def test_applied_lines_give_each_revision_once():
    lines = [(1.0, "applied r3: Expand: orders.total_cents"), (2.0, "r6 waits for backfill b"),
             (3.0, "applied r4"), (4.0, "applied r3: again")]
    assert applied_times(lines) == {"r3": 1.0, "r4": 3.0}


def test_commit_times_prefer_the_database_then_the_output_then_a_later_sample():
    observed = [(0.0, "r2"), (1.0, "r3"), (3.0, "r5")]  # r4 committed between two samples
    assert commit_times(REVS, observed, {"r4": 2.5}) == {"r3": 1.0, "r4": 2.5, "r5": 3.0}
    assert commit_times(REVS, observed, {}) == {"r3": 1.0, "r4": 3.0, "r5": 3.0}
    assert commit_times(REVS, observed, {"r3": 0.9})["r3"] == 1.0  # the database wins


def gated_upgrade() -> list[Segment]:
    """r3, r4 in the first upgrade call; r5's gate waits for backfill b; then r5, r6;
    then backfill c at head."""
    return build_segments(
        baseline_start=0.0, child_start=10.0, child_end=40.0, revisions=REVS,
        commits={"r3": 12.0, "r4": 13.0, "r5": 25.0, "r6": 26.0},
        lock_starts=[11.0, 24.0],
        backfills=[BackfillRun("b", 1, "completed", 14.0, 23.0), BackfillRun("c", 2, "completed", 27.0, 39.0)])


def test_segments_cover_the_run_in_order_without_overlap():
    segments = gated_upgrade()
    assert [(s.kind, s.name) for s in segments] == [
        (BASELINE, "before the upgrade"), (OTHER, "(start-up)"), (REVISION, "r3"), (REVISION, "r4"),
        (OTHER, "(after r4)"), (BACKFILL, "b"), (OTHER, "(after b)"), (REVISION, "r5"), (REVISION, "r6"),
        (OTHER, "(after r6)"), (BACKFILL, "c"), (OTHER, "(exit)")]
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert (segments[0].start, segments[-1].end) == (0.0, 40.0)


def test_a_revision_starts_when_its_upgrade_call_takes_the_schema_lock():
    by_name = {s.name: s for s in gated_upgrade()}
    assert (by_name["r3"].start, by_name["r3"].end) == (11.0, 12.0)  # not at the child's start
    assert (by_name["r5"].start, by_name["r5"].end) == (24.0, 25.0)  # not at the end of backfill b
    assert (by_name["r6"].start, by_name["r6"].end) == (25.0, 26.0)


def test_a_revision_never_committed_has_no_segment_and_the_rest_is_other():
    segments = build_segments(baseline_start=0.0, child_start=1.0, child_end=5.0, revisions=REVS,
                              commits={"r3": 2.0}, lock_starts=[], backfills=[])
    assert [(s.kind, s.name, s.start, s.end) for s in segments][1:] == [
        (REVISION, "r3", 1.0, 2.0), (OTHER, "(exit)", 2.0, 5.0)]


# --- attribution ----------------------------------------------------------------------

def statement(slot: float, ms: float, table: str = "orders", operation: str = "write") -> Statement:
    return Statement(table, operation, slot, ms, ms)


def test_a_statement_due_during_a_revision_counts_for_that_revision():
    segments = gated_upgrade()
    stats = {s.segment.name: s for s in attribute(segments, [
        statement(24.5, 900.0),  # due during r5, answered long after r5 committed
        statement(25.5, 3.0),
        statement(25.5, 2.0, "users", "read"),
    ], [])}
    assert stats["r5"].worst["orders", "write"].max_ms == 900.0 and stats["r5"].worst["orders", "write"].count == 1
    assert stats["r6"].worst["orders", "write"].max_ms == 3.0
    assert stats["r6"].worst["users", "read"].max_ms == 2.0
    assert stats["b"].worst["orders", "write"].count == 0 and stats["b"].worst["orders", "write"].max_ms is None


def test_statements_outside_the_run_count_nowhere_and_boundaries_belong_to_the_later_step():
    segments = gated_upgrade()
    assert locate(segments, -1.0) is None and locate(segments, 41.0) is None
    assert segments[locate(segments, 12.0)].name == "r4"  # r3 ends at 12.0, r4 starts there
    assert segments[locate(segments, 40.0)].name == "(exit)"  # the last step keeps its end


def test_a_lock_wait_counts_for_the_step_it_was_seen_in_and_the_longest_wins():
    segments = gated_upgrade()
    waits = [LockWait(24.2, 150.0, "load: UPDATE", "migration: ALTER"),
             LockWait(24.9, 850.0, "load: UPDATE", "migration: ALTER"),
             LockWait(30.0, 20.0, "load: UPDATE users", "migration: UPDATE users")]
    stats = {s.segment.name: s for s in attribute(segments, [], waits)}
    assert stats["r5"].lock_wait.waited_ms == 850.0
    assert stats["c"].lock_wait.waited_ms == 20.0
    assert stats["r6"].lock_wait is None


def test_the_whole_upgrade_leaves_out_the_baseline_and_says_where_the_worst_was():
    segments = gated_upgrade()
    stats = attribute(segments, [statement(5.0, 5000.0), statement(24.5, 900.0), statement(30.0, 40.0)],
                      [LockWait(24.9, 850.0, "load", "migration")])
    total = overall(stats)
    assert total.worst["orders", "write"].max_ms == 900.0 and total.worst["orders", "write"].count == 2
    summary = report.summarize(stats)
    assert summary["overall"]["longest"] == {"stream": "orders write", "max_ms": 900.0, "during": "r5"}
    assert summary["overall"]["lock_wait_during"] == "r5"


def test_the_markdown_has_a_row_per_step_and_the_whole_upgrade():
    stats = attribute(gated_upgrade(), [statement(24.5, 900.0)], [LockWait(24.9, 850.0, "load", "mig|ration")])
    result = {"shop": {"orders": 300, "users": 100, "products": 30, "translations": 150, "items": 700,
                       "generate_s": 0.1},
              "migration": {"returncode": 0, "seconds": 30.0},
              "backfills": [{"name": "b", "rows_done": 300, "status": "completed"}],
              "load": {"statements": 1, "by_stream": {"orders write": 1}, "errors": 0, "first_error": None},
              "sampler": {"samples": 10}, **report.summarize(stats)}
    text = report.section(result)
    rows = [line for line in text.splitlines() if line.startswith("| ")][2:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| before the upgrade", "| (start-up)", "| r3", "| r4", "| (after r4)", "| b (backfill)", "| (after b)",
        "| r5", "| r6", "| (after r6)", "| c (backfill)", "| (exit)", "| **whole upgrade**"]
    assert "| r5 | 1.00 | – / 900 |" in text and "mig\\|ration" in text


# --- the command line -----------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--orders", "0"], ["--orders", "-5"], ["--orders", "many"],
                                  ["--load-interval-ms", "0"]])
def test_bad_options_are_one_line_and_exit_1(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/postgres", "not a url"])
def test_an_unreachable_server_or_a_bad_url_is_one_line_and_exit_1(url, tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.upgrade", "--orders", "10", "--database-url", url,
                           "--output-dir", str(tmp_path)],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot create a scratch database" in done.stderr
    assert list(tmp_path.iterdir()) == []


# --- a real run -----------------------------------------------------------------------

def _database_exists(name: str) -> bool:
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                                      {"name": name}).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_a_tiny_upgrade_reports_every_revision_and_backfill_with_traffic_on_every_table(postgres_available,
                                                                                       tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.upgrade", "--orders", "300", "--output-dir", str(tmp_path),
                           "--database-url", POSTGRES_ADMIN_URL],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-4000:]
    reports = sorted(tmp_path.iterdir())
    assert [path.suffix for path in reports] == [".json", ".md"]
    assert reports[1].name.endswith("-upgrade-300.md")
    data = json.loads(reports[0].read_text())
    (size,) = data["sizes"]

    expected = cli.revisions_after_foundation()
    assert expected[0].startswith("0003") and size["revisions"] == expected
    steps = {(s["kind"], s["name"]): s for s in size["segments"]}
    for revision in expected:
        assert steps[REVISION, revision]["seconds"] >= 0
    assert {run["name"] for run in size["backfills"]} <= {name for kind, name in steps if kind == BACKFILL}
    assert all(run["status"] == "completed" for run in size["backfills"]) and size["backfills"]

    assert size["load"]["errors"] == 0
    assert set(size["load"]["by_stream"]) == {f"{t} {o}" for t in ("orders", "users", "product_translations")
                                              for o in ("read", "write")}
    assert all(count > 0 for count in size["load"]["by_stream"].values()), size["load"]
    assert sum(s["worst"]["orders write"]["count"] for s in size["segments"] if s["kind"] != BASELINE) > 0
    assert size["sampler"]["samples"] > 0

    table = reports[1].read_text()
    assert table in done.stdout
    assert "Command: `python -m bench.upgrade --orders 300" in table
    for revision in expected:
        assert f"| {revision} | " in table
    assert not _database_exists(size["shop"]["database"])  # the scratch database was dropped
