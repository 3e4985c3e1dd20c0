"""Writes on a background thread, so that generating a chunk overlaps with the
database ingesting the previous one.

The database driver releases the GIL while the server works (a COPY, an
executemany step), which is when the generator gets to run. At most `depth` chunks
wait in the queue, which keeps memory bounded. Writes keep their order. After a
failed write the rest are skipped and the error is raised to the producer, at its
next `write` or at the end.
"""
from __future__ import annotations

import queue
import threading
from typing import Sequence

from backend.datagen.writer import Writer

_STOP = object()


class BackgroundWriter:
    def __init__(self, writer: Writer, depth: int = 2):
        self._writer = writer
        self.stamp = writer.stamp
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="datagen-writer", daemon=True)

    def __enter__(self) -> "BackgroundWriter":
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self._error is None:
            self._error = exc  # the producer failed: skip what is still queued
        self._queue.put(_STOP)
        self._thread.join()
        if exc is None:
            self._raise_if_failed()

    def write(self, table: str, columns: Sequence[str], rows: list[tuple], plain: bool = False) -> None:
        self._raise_if_failed()
        self._queue.put((table, columns, rows, plain))

    def finish(self, tables: Sequence[str]) -> None:
        """Only valid once the thread is stopped (after the `with` block)."""
        self._writer.finish(tables)

    def _work(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            if self._error is None:  # after a failure, only drain the queue
                try:
                    self._writer.write(*job)
                except BaseException as exc:  # handed to the producer thread
                    self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
