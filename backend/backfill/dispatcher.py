"""What the engine needs from whoever hands batches to workers: a dispatcher.

The engine never imports an executor. The entry points (run.py, run_migrations.py,
wsgi.py) build the Celery dispatcher of worker/ when a broker is configured and hand
it in; without one they hand in nothing, and batches run in the process that drives
the run (or wait for the workers' recovery pass, which re-reads the database).
"""
from __future__ import annotations

from typing import Callable, Iterable, Protocol

# "Send these batch ids to the workers": what the service's resume, retry and
# recovery call (a dispatcher's `send`, or any function of that shape in tests).
SendBatches = Callable[[Iterable[int]], None]


class Dispatcher(Protocol):
    def send(self, batch_ids: Iterable[int], countdown: float = 0.0) -> None:
        """Hand these batches to the workers, each to start after `countdown` seconds."""

    def start(self, run_id: int) -> None:
        """Ask a worker to start (or take over) this run and dispatch its first batches."""
