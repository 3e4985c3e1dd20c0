"""The table of backfill runs printed by `run_migrations.py --status`."""
from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from backend.backfill import schema_job_progress, schema_jobs
from backend.backfill.service import BackfillService
from backend.config import Config
from backend.db import create_db_engine
from backend.text import escape_controls

HEADER = f"{'RUN':>5}  {'BACKFILL':<28} {'STATUS':<10} {'ROWS':>21} {'%':>6}  {'BATCHES ok/failed':<18} LAST ERROR"


def runs_table(config: Config, only: Iterable[str] = ()) -> list[str]:
    engine = create_db_engine(config.database_url)
    try:
        if not sa.inspect(engine).has_table("backfill_runs"):
            return ["backfills: none yet (the engine's tables come with revision 0002)"]
        service = BackfillService.from_config(config, engine=engine)
        wanted = set(only)
        runs = [r for r in service.list_runs() if not wanted or r.name in wanted]
        if not runs:
            return ["backfills: no runs"]
        lines = ["backfills:", HEADER]
        for run in runs:
            progress = service.snapshot(run.id)
            total = "?" if progress.rows_total is None else f"{'' if progress.rows_total_exact else '~'}{progress.rows_total:,}"
            percent = "-" if progress.percent is None else f"{progress.percent:.1f}"
            error = escape_controls(progress.last_error.splitlines()[0])[:60] if progress.last_error else ""
            if run.is_active and schema_jobs.is_schema_job(run.name):
                error = _build_line(service, run.id) or error
            lines.append(
                f"{run.id:>5}  {run.name:<28} {run.status:<10} {progress.rows_scanned:>10,}/{total:<10} "
                f"{percent:>6}  {progress.batches_done:>8}/{progress.batches_failed:<9} {error}"
            )
        return lines
    finally:
        engine.dispose()


def _build_line(service: BackfillService, run_id: int) -> str | None:
    """A schema job's index build while it runs, from pg_stat_progress_create_index."""
    with service.engine.connect() as connection:
        progress = schema_job_progress.build_progress(connection, run_id)
    return f"building: {schema_job_progress.describe_progress(progress)}" if progress else None
