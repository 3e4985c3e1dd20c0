"""The benchmark's arithmetic, without a database: which run of a repeated method is
reported, and what the scaling line says about the single UPDATE beside ours."""
from __future__ import annotations

import pytest

from bench import report, targets
from bench.cli import parse_args
from bench.common import unused_stem
from bench.measure import median_run


def _run(wall_s: float, correct: bool = True) -> dict:
    return {"method": "inprocess", "wall_s": wall_s, "rows_per_s": 1000 / wall_s, "check": {"correct": correct}}


def test_the_median_run_is_reported_with_every_run_beside_it():
    chosen = median_run([_run(30.0), _run(20.0), _run(25.0)])
    assert chosen["wall_s"] == 25.0 and chosen["rows_per_s"] == 40.0
    assert [r["wall_s"] for r in chosen["repeats"]] == [30.0, 20.0, 25.0]
    assert report._wall(chosen) == "25.00 (20.00–30.00)"


def test_an_even_number_of_runs_reports_the_lower_median_and_one_wrong_run_makes_it_wrong():
    chosen = median_run([_run(30.0), _run(20.0, correct=False)])
    assert chosen["wall_s"] == 20.0
    assert chosen["check"]["correct"] is False
    assert median_run([_run(30.0), _run(20.0, correct=True), _run(25.0, correct=False)])["check"]["correct"] is False


def test_a_single_run_shows_no_range():
    assert report._wall(median_run([_run(12.345)])) == "12.35"


def test_the_scaling_target_shows_the_single_updates_own_step():
    points = [{"rows": 100_000, "wall_s": 2.0, "peak_rss_kb": 50_000, "update_wall_s": 1.5},
              {"rows": 1_000_000, "wall_s": 30.0, "peak_rss_kb": 51_000, "update_wall_s": 24.0}]
    [scaling] = [t for t in targets.evaluate_targets([], points) if t["target"].startswith("10x the rows")]
    assert scaling["status"] == "missed"
    assert scaling["measured"] == "100k->1M: x15.0 time for x10 rows (single UPDATE x16.0)"


@pytest.mark.parametrize("argv", [["--repeat", "0"], ["--repeat", "-2"]])
def test_repeat_must_be_at_least_one(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "--repeat must be at least 1" in capsys.readouterr().err


def test_a_second_run_on_the_same_day_does_not_overwrite_the_first(tmp_path):
    assert unused_stem(tmp_path, "2026-11-25-1m") == tmp_path / "2026-11-25-1m"
    (tmp_path / "2026-11-25-1m.md").write_text("first run")
    assert unused_stem(tmp_path, "2026-11-25-1m") == tmp_path / "2026-11-25-1m-2"
    (tmp_path / "2026-11-25-1m-2.json").write_text("{}")
    assert unused_stem(tmp_path, "2026-11-25-1m") == tmp_path / "2026-11-25-1m-3"


def test_repeat_also_measures_each_scaling_size_that_many_times_and_reports_its_median(monkeypatch):
    from types import SimpleNamespace

    from bench import measure as cli

    def result(method: str, rows: int, wall: float) -> dict:
        return {"method": method, "rows": rows, "wall_s": wall, "rows_per_s": rows / wall,
                "peak_rss_kb": 50_000, "check": {"correct": True}, "txn": None,
                "load": {"p50": 1.0, "p99": 2.0, "max": 3.0, "max_blocked_ms": 0.0}}

    walls = iter([3.0, 1.0, 2.0, 9.0, 7.0, 8.0])  # inprocess at 100k, then at 10M, three rounds each
    calls = []
    main_run = median_run([result("inprocess", 1_000_000, wall) for wall in (5.0, 4.0, 6.0)])

    def fake_measure(method, dataset, options, workdir, broker_url):
        calls.append((method, dataset.orders))
        return result(method, dataset.orders, next(walls))

    monkeypatch.setattr(cli, "measure", fake_measure)
    monkeypatch.setattr(cli, "build_dataset", lambda url, rows, seed: SimpleNamespace(orders=rows, url=f"db{rows}"))
    monkeypatch.setattr(cli, "drop_scratch_database", lambda url: None)
    options = SimpleNamespace(methods=["inprocess"], scaling_10m=True, repeat=3, database_url="x", seed=1,
                              keep_database=False)

    points = cli.measure_scaling(options, [main_run], [], None)

    assert calls == [("inprocess", 100_000)] * 3 + [("inprocess", 10_000_000)] * 3  # 1M reuses the main runs
    assert [p["wall_s"] for p in points] == [2.0, 5.0, 8.0]
    assert [[r["wall_s"] for r in p["repeats"]] for p in points] == [[3.0, 1.0, 2.0], [5.0, 4.0, 6.0], [9.0, 7.0, 8.0]]
    assert report._wall(points[2]) == "8.00 (7.00–9.00)"
