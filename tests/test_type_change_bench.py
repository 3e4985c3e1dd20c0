"""`python -m bench.typechange`: one real run at a tiny size against PostgreSQL, with
short phases. Times are never asserted: they are the benchmark's business; what is
checked is that every figure of the report is there and the column ends bigint."""
from __future__ import annotations

import re

import pytest

from bench import typechange
from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.timeout(300)


def test_a_tiny_run_reports_every_figure_and_ends_with_bigint(postgres_available, tmp_path, monkeypatch, capsys):
    for name, value in (("BASELINE_SECONDS", 0.3), ("OVERHEAD_ROUNDS", 1), ("SINGLE_ROWS", 20), ("BULK_ROWS", 200)):
        monkeypatch.setattr(typechange, name, value)

    assert typechange.main(["--orders", "300", "--server-url", POSTGRES_ADMIN_URL,
                            "--output-dir", str(tmp_path)]) == 0

    [written] = tmp_path.glob("*-typechange-300.md")
    text = written.read_text()
    assert text == capsys.readouterr().out
    [row] = [line for line in text.splitlines() if line.startswith("| 300 |")][:1]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) == 12 and cells[-1] == "0"  # no shop statement failed
    for step in cells[2:7]:  # baseline, start, copy, finish, cleanup
        assert re.fullmatch(r"[\d.]+ s, worst \d+ ms \((read|update|insert|-)\)", step), step
    assert re.fullmatch(r"(\d+ ms|< 2 ms \(one sample\)) \(longest of \d+\)", cells[8])
    assert re.search(r"\| x[\d.]+ \|", text)  # the trigger's overhead
    assert text.rstrip().endswith("300 orders: bigint")


def test_sizes_name_the_results_file():
    assert [typechange.size_label(n) for n in (300, 100_000, 1_000_000, 2_000_000)] == ["300", "100k", "1m", "2m"]
