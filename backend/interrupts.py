"""SIGTERM handled like Ctrl-C while a block runs.

A deploy tool or a container runtime stops a process with SIGTERM; by default that
kills it on the spot, skipping every `finally`. Inside `sigterm_unwinds()` it raises
SystemExit instead, so the process cleans up as after Ctrl-C (a rehearsal drops its
copy, the in-process executor releases its run's lease). Signal handlers belong to
the main thread: elsewhere the block runs unchanged.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
