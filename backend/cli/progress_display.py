"""Showing backfill progress on the command line: a live rich progress bar per
backfill on a terminal, plain log lines (at most one per few seconds) otherwise.

The bar fits 80 columns: the backfill's name gives way first (ellipsis), then the
bar itself; the counts, the rate and the ETA are never cut. Rate and ETA are the
engine's (backend/backfill/progress.py), not rich's own estimate. A run that ends
leaves the live display before the next line is printed (its summary follows)."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Column

from backend.backfill.model import RunStatus
from backend.backfill.progress import Progress as RunProgress

LOG_INTERVAL_SECONDS = 5.0


def describe(progress: RunProgress) -> str:
    total = f"{progress.rows_total:,}" if progress.rows_total is not None else "?"
    approx = "" if progress.rows_total_exact else "~"
    percent = f"{progress.percent:.1f}%" if progress.percent is not None else "-"
    rate = f", {progress.rows_per_second:,.0f} rows/s" if progress.rows_per_second else ""
    eta = f" ETA {eta_text(progress.eta_seconds)}" if progress.eta_seconds is not None else ""
    line = (f"{progress.name} [run {progress.run_id}] {progress.status}: "
            f"{progress.rows_scanned:,}/{approx}{total} rows ({percent}), {progress.rows_done:,} changed"
            f"{rate}{eta}")
    if progress.windows_remaining is not None and progress.estimated_finish_at is not None:
        line += (f", about {progress.windows_remaining} more window(s), "
                 f"done around {progress.estimated_finish_at:%Y-%m-%d %H:%M} UTC")
    if progress.status == "waiting" and progress.wait_reason:
        line += f" ({progress.wait_reason})"
    return line


def eta_text(seconds: float) -> str:
    """0:05:12, 12:00:05: hours, minutes, seconds."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def bar_fields(progress: RunProgress) -> dict[str, str]:
    """The text of a run's bar beside the bar itself."""
    total = max(progress.rows_total or 0, progress.rows_scanned)
    approx = "" if progress.rows_total_exact else "~"
    return {
        "rows": f"{progress.rows_scanned:,}/{approx}{total:,}",
        "rate": f"{progress.rows_per_second:,.0f} rows/s" if progress.rows_per_second else "",
        "eta": f"ETA {eta_text(progress.eta_seconds)}" if progress.eta_seconds is not None else "",
    }


# Beside the name: the bar (5 at least), "100%", "1,000,000/1,000,000", "43,079 rows/s",
# "ETA 1:02:03" and the spaces between them.
RIGHT_OF_NAME = 56


def _bar_columns(width: int) -> tuple:
    text = dict(no_wrap=True)
    name = Column(no_wrap=True, overflow="ellipsis", max_width=max(10, min(40, width - RIGHT_OF_NAME)))
    return (
        TextColumn("{task.description}", table_column=name),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
        TaskProgressColumn(table_column=Column(**text)),
        TextColumn("{task.fields[rows]}", table_column=Column(**text)),
        TextColumn("{task.fields[rate]}", table_column=Column(**text)),
        TextColumn("{task.fields[eta]}", table_column=Column(**text)),
    )


class ProgressDisplay:
    """Receives Progress snapshots; chooses bar or lines from the output stream."""

    def __init__(self, stream: TextIO | None = None, force_terminal: bool | None = None,
                 console: Console | None = None):
        """`console`: the bars' rich Console (tests give one of a fixed width)."""
        self.stream = stream or sys.stdout
        self.console = console
        self.live = self.stream.isatty() if force_terminal is None else force_terminal
        self._bars: Progress | None = None
        self._tasks: dict[int, int] = {}
        self._last_line: dict[int, float] = {}
        self._last_status: dict[int, str] = {}

    def message(self, text: str) -> None:
        if self._bars is not None:
            self._bars.refresh()  # the bars as they are now, above and below the line
            self._bars.console.print(text, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def update(self, progress: RunProgress) -> None:
        if self.live:
            self._update_bar(progress)
        else:
            self._update_line(progress)

    def _update_bar(self, progress: RunProgress) -> None:
        if self._bars is None:
            console = self.console or Console(file=self.stream, force_terminal=True)
            self._bars = Progress(*_bar_columns(console.width), console=console, expand=True)
            self._bars.start()
        if progress.run_id not in self._tasks:
            self._tasks[progress.run_id] = self._bars.add_task(progress.name, total=progress.rows_total or 0,
                                                               **bar_fields(progress))
        task = self._tasks[progress.run_id]
        total = max(progress.rows_total or 0, progress.rows_scanned)
        status = "" if progress.status == RunStatus.RUNNING else f" ({progress.status})"
        finished = progress.status in RunStatus.FINISHED
        self._bars.update(task, completed=total if progress.status == RunStatus.COMPLETED else progress.rows_scanned,
                          total=total, description=f"{progress.name}{status}", **bar_fields(progress))
        if finished:  # its last state, then out of the live display: its summary line follows
            self._bars.refresh()
            self._bars.remove_task(task)
            del self._tasks[progress.run_id]

    def _update_line(self, progress: RunProgress) -> None:
        """A line when the run's status changes, else at most every LOG_INTERVAL_SECONDS
        (a run waiting hours for its window must not print a line per poll)."""
        now = time.monotonic()
        changed = self._last_status.get(progress.run_id) != progress.status
        if changed or now - self._last_line.get(progress.run_id, 0.0) >= LOG_INTERVAL_SECONDS:
            self._last_line[progress.run_id] = now
            self._last_status[progress.run_id] = progress.status
            print(describe(progress), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
