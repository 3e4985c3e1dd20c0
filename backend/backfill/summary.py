"""What a finished run did, in one line: elapsed time, rows, average rate, batches
and retries (`run_migrations.py --batched` prints it as each run ends, on a terminal
or not).

The average is over the whole run (rows scanned / elapsed), unlike the recent rate
of progress.py, which is about the minute before a snapshot.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.clock import as_utc, utcnow
from backend.backfill.runs import get_run
from backend.backfill.state import backfill_batches


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    name: str
    status: str
    seconds: float | None  # from its start to its end (None: never started)
    rows_scanned: int
    rows_done: int
    batches: int
    retries: int  # claims beyond each batch's first: retried, split or taken over after a lost lease

    @property
    def rows_per_second(self) -> float | None:
        return self.rows_scanned / self.seconds if self.seconds and self.rows_scanned else None

    def line(self) -> str:
        took = f" in {duration(self.seconds)}" if self.seconds is not None else ""
        rate = f", {self.rows_per_second:,.0f} rows/s on average" if self.rows_per_second else ""
        retries = f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        return (f"backfill {self.name} (run {self.run_id}) {self.status}{took}: {self.rows_scanned:,} rows scanned, "
                f"{self.rows_done:,} changed{rate}, {self.batches:,} batch{'' if self.batches == 1 else 'es'}, "
                f"{retries}")


def summarize(connection: Connection, run_id: int) -> RunSummary:
    run = get_run(connection, run_id)
    b = backfill_batches
    again = sa.case((b.c.attempts > 1, b.c.attempts - 1), else_=0)
    batches, retries = connection.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(again), 0)).where(b.c.run_id == run_id)
    ).one()
    started, finished = as_utc(run.started_at), as_utc(run.finished_at) or utcnow()
    seconds = max((finished - started).total_seconds(), 0.0) if started else None
    return RunSummary(run.id, run.name, run.status, seconds, run.rows_scanned, run.rows_done, int(batches),
                      int(retries))


def duration(seconds: float) -> str:
    """1h 02m 03s, 2m 05s, 4.2s."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
