"""`python run_migrations.py --batched` on the scratch database, as a child process run
in-process (no broker), its output lines kept with the time each arrived.

The child's connections are labelled with PGAPPNAME, so that the sampler can say
when the migration is the one waiting, or the one blocking the shop.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

APPLICATION_NAME = "bench-upgrade-migration"
ARGUMENTS = ("run_migrations.py", "--batched", "--in-process")


def child_env(url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CELERY_BROKER_URL"}
    env.update(DATABASE_URL=url, PGAPPNAME=APPLICATION_NAME, PYTHONUNBUFFERED="1")
    return env


def shown_command() -> str:
    return f"CELERY_BROKER_URL= DATABASE_URL=<scratch> python {' '.join(ARGUMENTS)}"


class Migration:
    def __init__(self, url: str, root: Path):
        self.url, self.root = url, root
        self.lines: list[tuple[float, str]] = []
        self.started: float | None = None
        self.ended: float | None = None
        self.returncode: int | None = None
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> "Migration":
        self.started = time.time()
        self._process = subprocess.Popen([sys.executable, *ARGUMENTS], cwd=self.root, env=child_env(self.url),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, name="migration-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def wait(self, timeout: float) -> int:
        try:
            self.returncode = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"run_migrations.py --batched did not finish within {timeout:.0f} s") from None
        finally:
            self.ended = time.time()
            self._reader.join(10)
        return self.returncode

    def kill(self) -> None:
        """Only our own child, by its pid."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(30)
