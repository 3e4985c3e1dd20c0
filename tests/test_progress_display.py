"""The plain-line progress of `--batched` when stdout is not a terminal (CI logs, pipes)."""
from __future__ import annotations

import io

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
