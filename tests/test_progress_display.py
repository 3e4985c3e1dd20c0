"""The plain-line progress of `--batched` when stdout is not a terminal (CI logs, pipes)."""
from __future__ import annotations

import io
import re

from backend.backfill.progress import Progress
from backend.cli.progress_display import ProgressDisplay


def progress(status: str, rows_done: int = 0) -> Progress:
    return Progress(run_id=1, name="orders_total_cents", status=status, rows_done=rows_done, rows_scanned=rows_done,
                    rows_total=100, rows_total_exact=True, percent=float(rows_done), rows_per_second=None,
                    eta_seconds=None, batch_size=10, batches_done=rows_done // 10, batches_failed=0, last_error=None,
                    wait_reason="outside the maintenance windows (daily 01:00-02:00)" if status == "waiting" else None)


def test_a_waiting_run_polled_every_second_prints_one_line_then_one_per_change():
    out = io.StringIO()
    display = ProgressDisplay(stream=out, force_terminal=False)
    display.update(progress("running", 10))
    for _ in range(50):  # a follower polling a run that waits for hours
        display.update(progress("waiting", 20))
    display.update(progress("running", 20))
    display.update(progress("completed", 100))
    lines = out.getvalue().splitlines()
    assert [line.split()[3].rstrip(":") for line in lines] == ["running", "waiting", "running", "completed"], lines


def running(name: str, scanned: int, total: int = 1_000_000, rate: float | None = None,
            eta: float | None = None, status: str = "running") -> Progress:
    return Progress(run_id=hash(name) % 1000, name=name, status=status, rows_done=scanned, rows_scanned=scanned,
                    rows_total=total, rows_total_exact=True, percent=None, rows_per_second=rate, eta_seconds=eta,
                    batch_size=1000, batches_done=scanned // 1000, batches_failed=0, last_error=None)


def frames(output: str) -> list[str]:
    """What a terminal shows, line by line: rich's live display redraws its lines
    after carriage return or cursor up, then erase line; printed lines end with a newline."""
    text = re.sub(r"\x1b\[\?25[lh]", "", output)
    return [frame for frame in re.split(r"\r\x1b\[2K|\x1b\[1A\x1b\[2K|\n", text) if frame]


def test_the_bars_fit_80_columns_with_the_rate_and_eta_whole():
    from rich.console import Console

    out = io.StringIO()
    display = ProgressDisplay(stream=out, force_terminal=True,
                              console=Console(file=out, width=80, force_terminal=True, color_system=None))
    display.update(running("users_email_normalized", 400_000, rate=43_079.2, eta=3723))
    display.update(running("orders_total_cents_with_a_long_name", 20_000, 200_000, status="waiting"))
    display.message("0006_orders_total_not_null waits for backfill orders_total_cents")
    display.close()
    shown = frames(out.getvalue())
    assert shown and all(len(frame) <= 80 for frame in shown), [f for f in shown if len(f) > 80]
    bar = [f for f in shown if "400,000/1,000,000" in f][-1]
    assert bar.rstrip().endswith("43,079 rows/s ETA 1:02:03")  # never cut to "-:--:…"
    assert "…" not in bar.split("400,000")[1]
    waiting = [f for f in shown if "20,000/200,000" in f][-1]
    assert "(waiting)" in waiting or "…" in waiting  # the long name gives way, not the counts


def test_a_finished_run_leaves_the_live_display_at_100_before_the_next_line():
    """The `applied 0006...` line was printed while the bar of the backfill it waited
    for still showed 40%."""
    from rich.console import Console

    out = io.StringIO()
    display = ProgressDisplay(stream=out, force_terminal=True,
                              console=Console(file=out, width=80, force_terminal=True, color_system=None))
    display.update(running("orders_total_cents", 80_000, 200_000, rate=40_000.0, eta=3))
    display.update(running("orders_total_cents", 200_000, 200_000, status="completed"))
    display.message("applied 0006_orders_total_not_null")
    display.close()
    shown = frames(out.getvalue())
    applied = shown.index("applied 0006_orders_total_not_null")
    last_bar = [f for f in shown[:applied] if "orders_total_cents" in f][-1]
    assert "100%" in last_bar and "200,000/200,000" in last_bar, shown
    assert not [f for f in shown[applied + 1:] if "orders_total_cents" in f]  # gone from the live display


def test_plain_lines_show_no_rate_for_a_run_that_does_not_move():
    out = io.StringIO()
    display = ProgressDisplay(stream=out, force_terminal=False)
    display.update(running("orders_total_cents", 100_000, 200_000, rate=12_345.6, eta=8.1))
    display.update(running("orders_total_cents", 200_000, 200_000, status="completed"))
    first, last = out.getvalue().splitlines()
    assert first.endswith("12,346 rows/s ETA 0:00:08")
    assert "rows/s" not in last and last.endswith("200,000 changed")
