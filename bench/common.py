"""What every benchmark shares: where the project is, the server it uses, a log line on
stderr, a scratch database, the machine it ran on, a results file name that is free."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import database, report
from backend.migrations.safety.databases import create_scratch_database


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def create_bench_database(server_url: str, prefix: str = "bench") -> str:
    """A scratch database on the server; one that cannot be reached (or a URL that is
    not one) is a one-line error, not a traceback."""
    import sqlalchemy as sa

    try:
        return create_scratch_database(server_url, prefix)
    except (sa.exc.OperationalError, sa.exc.ArgumentError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        try:
            shown = sa.make_url(server_url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = repr(server_url)
        raise SystemExit(f"error: cannot create a scratch database on {shown}: {reason}") from None


def machine_info(server_url: str, dataset_url: str) -> dict:
    def meminfo_gb() -> float | None:
        try:
            with open("/proc/meminfo") as f:
                kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
            return round(kb / 1024 / 1024, 1)
        except (OSError, StopIteration):
            return None

    def cpu_model() -> str:
        try:
            with open("/proc/cpuinfo") as f:
                return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            return platform.processor() or "unknown"

    import celery
    import psycopg2
    import sqlalchemy

    def git(*args: str) -> str | None:  # read-only commands
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    changed = git("diff", "--name-only", "HEAD", "--", "backend", "worker")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "engine_files_changed_since_commit": changed.splitlines() if changed else [],
            "nproc": os.cpu_count(), "cpu": cpu_model(), "ram_gb": meminfo_gb(), "arch": platform.machine(),
            "kernel": platform.release(), "python": platform.python_version(),
            "postgresql": database.server_version(dataset_url), "postgresql_settings": database.server_settings(dataset_url),
            "sqlalchemy": sqlalchemy.__version__, "psycopg2": psycopg2.__version__.split()[0],
            "celery": celery.__version__, "loadavg_at_start": os.getloadavg()}


def output_stem(date: str, rows: int, smoke: bool, batch_size: int | None = None, per_row: bool = False) -> str:
    """<date>[-perrow]-<size>, with -b<batch size> when it is not the backfill's own."""
    stem = f"{date}{'-perrow' if per_row else ''}-{'smoke' if smoke else report.rows_label(rows).lower()}"
    return f"{stem}-b{batch_size}" if batch_size else stem


def unused_stem(directory: Path, stem: str) -> Path:
    """directory/stem, or stem-2, -3... when an earlier run's results already have that
    name: a second run on the same day keeps the first one's files."""
    candidate, number = directory / stem, 1
    while any(candidate.with_suffix(suffix).exists() for suffix in (".md", ".json", ".png")):
        number += 1
        candidate = directory / f"{stem}-{number}"
    return candidate
