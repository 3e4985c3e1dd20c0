"""What a schema job's run shows beyond the run: its statement and, while its index
builds, the build's row of PostgreSQL's `pg_stat_progress_create_index`, found by the
`application_name` the attempt's connection carries (schema_jobs.application_name).
Read by `--status` (backend/cli/runs_table.py) and the operations API (view.py)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.backfill.model import Run
from backend.backfill.schema_jobs import application_name, definition, is_schema_job

PROGRESS_COLUMNS = ("phase", "blocks_done", "blocks_total", "tuples_done", "tuples_total", "lockers_done",
                    "lockers_total", "partitions_done", "partitions_total")


def build_progress(connection: Connection, run_id: int) -> dict[str, Any] | None:
    """The job's row of pg_stat_progress_create_index while its build runs (phase,
    blocks and tuples done / total, lockers waited for), else None."""
    if connection.dialect.name != "postgresql":
        return None
    row = connection.execute(sa.text(
        f"SELECT {', '.join('p.' + column for column in PROGRESS_COLUMNS)} "
        "FROM pg_stat_progress_create_index p JOIN pg_stat_activity a ON a.pid = p.pid "
        "WHERE a.application_name = :name AND p.datname = current_database() LIMIT 1"),
        {"name": application_name(run_id)}).mappings().first()
    return dict(row) if row is not None else None


def describe_progress(progress: dict[str, Any]) -> str:
    """One line for `--status`: the phase, and blocks or tuples done when counted."""
    for unit in ("blocks", "tuples"):
        done, total = progress.get(f"{unit}_done"), progress.get(f"{unit}_total")
        if total:
            return f"{progress['phase']}: {unit} {done:,}/{total:,} ({done / total * 100:.1f}%)"
    return str(progress["phase"])


def job_view(connection: Connection, run: Run) -> dict[str, Any] | None:
    """What the API shows of a schema job's run beyond the run: its statement and,
    while it builds, the build's progress. None for a backfill's run."""
    if not is_schema_job(run.name):
        return None
    found = definition(connection, run.name)
    if found is None:  # unscheduled since (a downgrade): the run alone remains
        return None
    return {"kind": found.kind, "table": found.table_name, "target": found.target, "statement": found.statement,
            "progress": build_progress(connection, run.id)}
