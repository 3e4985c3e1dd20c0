"""Showing backfill progress on the command line: a live rich progress bar per
backfill on a terminal, plain log lines (at most one per few seconds) otherwise."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from backend.backfill.progress import Progress as RunProgress

LOG_INTERVAL_SECONDS = 5.0


def describe(progress: RunProgress) -> str:
    total = f"{progress.rows_total:,}" if progress.rows_total is not None else "?"
    approx = "" if progress.rows_total_exact else "~"
    percent = f"{progress.percent:.1f}%" if progress.percent is not None else "-"
    rate = f"{progress.rows_per_second:,.0f} rows/s" if progress.rows_per_second else "- rows/s"
    eta = f"ETA {progress.eta_seconds:,.0f}s" if progress.eta_seconds is not None else ""
    line = (f"{progress.name} [run {progress.run_id}] {progress.status}: "
            f"{progress.rows_scanned:,}/{approx}{total} rows ({percent}), {progress.rows_done:,} changed, "
            f"{rate} {eta}").rstrip()
    if progress.windows_remaining is not None and progress.estimated_finish_at is not None:
        line += (f", about {progress.windows_remaining} more window(s), "
                 f"done around {progress.estimated_finish_at:%Y-%m-%d %H:%M} UTC")
    if progress.status == "waiting" and progress.wait_reason:
        line += f" ({progress.wait_reason})"
    return line


class ProgressDisplay:
    """Receives Progress snapshots; chooses bar or lines from the output stream."""

    def __init__(self, stream: TextIO | None = None, force_terminal: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if force_terminal is None else force_terminal
        self._bars: Progress | None = None
        self._tasks: dict[int, int] = {}
        self._last_line: dict[int, float] = {}
        self._last_status: dict[int, str] = {}

    def message(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def update(self, progress: RunProgress) -> None:
        if self.live:
            self._update_bar(progress)
        else:
            self._update_line(progress)

    def _update_bar(self, progress: RunProgress) -> None:
        if self._bars is None:
            self._bars = Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), console=Console(file=self.stream, force_terminal=True),
            )
            self._bars.start()
        if progress.run_id not in self._tasks:
            self._tasks[progress.run_id] = self._bars.add_task(progress.name, total=progress.rows_total or 0, rate="")
        rate = f"{progress.rows_per_second:,.0f} rows/s" if progress.rows_per_second else ""
        total = max(progress.rows_total or 0, progress.rows_scanned)
        self._bars.update(self._tasks[progress.run_id], completed=progress.rows_scanned, total=total, rate=rate,
                          description=f"{progress.name} ({progress.status})")

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
