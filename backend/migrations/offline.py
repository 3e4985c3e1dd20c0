"""The backfill helpers of backend.migrations.backfill_ops as SQL, for offline mode.

`alembic upgrade head --sql` has no connection to read runs from: it writes the
script a DBA reviews and runs later with psql. So the schedule becomes an INSERT
that checks for an active run when the script runs, the unschedule plain DELETEs,
and a gate a PL/pgSQL block that checks what the online gate checks and fails the
script (RAISE EXCEPTION) while the backfill is unfinished. PostgreSQL only: env.py
refuses offline mode on other databases.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from backend.backfill.definition import Backfill
from backend.backfill.model import RunStatus
from backend.backfill.state import backfill_runs, backfill_transitions

GATE_COUNT_LIMIT = 1_000_000  # the online gate counts up to this many rows too


def render(statement: sa.ClauseElement) -> str:
    """PostgreSQL SQL with its values inlined: it is embedded in a PL/pgSQL block. The
    named paramstyle keeps a % in a literal single, as psql reads it."""
    dialect = postgresql.dialect(paramstyle="named")
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def verbatim(sql: str) -> sa.TextClause:
    """A text() that op.execute writes as is: its colons are not bind parameters."""
    return sa.text(sql.replace(":", r"\:"))


def _active_run(name: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(backfill_runs.c.name == name, backfill_runs.c.status.in_(RunStatus.ACTIVE))


def schedule_statement(name: str, backfill: Backfill, revision: str | None) -> sa.Insert:
    """One statement: a pending run of `name` unless one is active when the script
    runs (like the online helper), and its 'scheduled' transition. Timestamps are
    the database's now(): the script runs long after it was rendered."""
    run = (
        sa.insert(backfill_runs)
        .from_select(
            ["name", "status", "batch_size", "max_parallel", "key_type", "scheduled_by"],
            sa.select(*_labelled(name=name, status=RunStatus.PENDING, batch_size=backfill.batch_size,
                                 max_parallel=backfill.max_parallel, key_type=backfill.key_type,
                                 scheduled_by=revision)).where(~_active_run(name)),
        )
        .returning(backfill_runs.c.id)
        .cte("scheduled_run")
    )
    actor = f"revision {revision}" if revision else "engine"
    return sa.insert(backfill_transitions).from_select(
        ["run_id", "from_status", "to_status", "actor", "reason", "at"],
        sa.select(run.c.id.label("run_id"), *_labelled(from_status=None, to_status=RunStatus.PENDING,
                                                       actor=actor[:128], reason="scheduled"),
                  sa.func.now().label("at")),
    )


def _labelled(**values) -> list[sa.ColumnElement]:
    """Literal values named after their columns, so the script reads like a VALUES list."""
    return [sa.literal(value, sa.String if value is None or isinstance(value, str) else sa.Integer).label(column)
            for column, value in values.items()]


def unschedule_statements(name: str, reason: str) -> list[sa.Insert | sa.Update]:
    """The unfinished runs of `name` cancelled, with `reason` in their transition log
    (as online: history stays)."""
    active = sa.and_(backfill_runs.c.name == name, backfill_runs.c.status.in_(RunStatus.ACTIVE))
    log = sa.insert(backfill_transitions).from_select(
        ["run_id", "from_status", "to_status", "actor", "reason", "at"],
        sa.select(backfill_runs.c.id, backfill_runs.c.status,
                  *_labelled(to_status=RunStatus.CANCELLED, actor="alembic downgrade", reason=reason),
                  sa.func.now()).where(active),
    )
    cancel = sa.update(backfill_runs).where(active).values(
        status=RunStatus.CANCELLED, wait_reason=None, next_window_at=None, finished_at=sa.func.now(),
        updated_at=sa.func.now())
    return [log, cancel]


# --- the gate ------------------------------------------------------------------------

def gate_block(named: dict[str, Backfill], revision: str | None, finish_command: str) -> str:
    """A DO block that raises, with the online gate's message, unless every named
    backfill is finished by status AND data; a pending run with no row left to do
    is completed by it, as the online gate does, so a fresh database passes."""
    checks = "\n".join(_gate_check(name, backfill) for name, backfill in named.items())
    where = f"revision {revision}" if revision else "this revision"
    message = _sql_string(f"{where} requires backfill % to be finished (%). Finish it with: {finish_command}")
    return f"""DO $gate$
DECLARE
    gate_run_id bigint;
    gate_status text;
    gate_left bigint;
    gate_shown text;
    gate_unfinished text[] := '{{}}';
    gate_details text[] := '{{}}';
BEGIN
{checks}
    IF cardinality(gate_unfinished) > 0 THEN
        RAISE EXCEPTION {message}, array_to_string(gate_unfinished, ', '), array_to_string(gate_details, '; ');
    END IF;
END
$gate$"""


def _gate_check(name: str, backfill: Backfill) -> str:
    """The checks of backend.migrations.backfill_ops._gate_problem for one backfill, in PL/pgSQL."""
    has_filter = backfill.pending_filter() is not None
    completed_ok = "gate_status = 'completed'" + (" AND gate_left = 0" if has_filter else "")
    quoted = _sql_string(name)

    def unfinished(detail_format: str, *args: str, indent: int = 8) -> str:
        detail = ", ".join([_sql_string(f"%s: {detail_format}"), quoted, *args])
        return (f"gate_unfinished := gate_unfinished || {quoted}::text;\n{' ' * indent}"
                f"gate_details := gate_details || format({detail});")

    return f"""    -- {name}
    gate_run_id := NULL;
    gate_status := NULL;
    SELECT latest.id, latest.status INTO gate_run_id, gate_status FROM ({render(_latest_run(name))}) AS latest;
    gate_left := ({render(_rows_needing_work(backfill))});
    gate_shown := CASE WHEN gate_left < {GATE_COUNT_LIMIT} THEN to_char(gate_left, 'FM999,999,990')
                       ELSE 'over 1,000,000' END;
    IF gate_run_id IS NULL THEN
        IF gate_left > 0 THEN
            {unfinished("never scheduled and %s rows need work", "gate_shown", indent=12)}
        END IF;
    ELSIF {completed_ok} THEN
        NULL;
    ELSIF gate_status = 'pending' AND gate_left = 0 THEN
        {render(_complete_run())};
        IF FOUND THEN
            {render(_log_completed())};
        ELSE
            {unfinished("run %s stopped being pending while the gate checked it", "gate_run_id", indent=12)}
        END IF;
    ELSIF gate_status = 'completed' THEN
        {unfinished("run %s completed but %s rows still need work", "gate_run_id", "gate_shown")}
    ELSE
        {unfinished("run %s is %s, %s rows still need work", "gate_run_id", "gate_status", "gate_shown")}
    END IF;"""


def _latest_run(name: str) -> sa.Select:
    return (sa.select(backfill_runs.c.id, backfill_runs.c.status).where(backfill_runs.c.name == name)
            .order_by(backfill_runs.c.id.desc()).limit(1))


def _rows_needing_work(backfill: Backfill) -> sa.Select:
    """ops.rows_needing_work as one query: the backfill's pending filter, up to the limit."""
    keys = sa.select(backfill.key_column)
    pending = backfill.pending_filter()
    if pending is not None:
        keys = keys.where(pending)
    return sa.select(sa.func.count()).select_from(keys.limit(GATE_COUNT_LIMIT).subquery())


_RUN_ID = sa.literal_column("gate_run_id")


def _complete_run() -> sa.Update:
    """runs.transition(..., COMPLETED) of the gate: the same columns, now() for times."""
    now = sa.func.now()
    return (sa.update(backfill_runs)
            .where(backfill_runs.c.id == _RUN_ID, backfill_runs.c.status == RunStatus.PENDING)
            .values(status=RunStatus.COMPLETED, started_at=now, rows_total=0, rows_total_exact=True,
                    updated_at=now, finished_at=now))


def _log_completed() -> sa.Insert:
    """Inline: no RETURNING of the new id, which PL/pgSQL would have nowhere to put."""
    return sa.insert(backfill_transitions).inline().values(
        run_id=_RUN_ID, from_status=RunStatus.PENDING, to_status=RunStatus.COMPLETED, actor="alembic gate",
        reason="no row needed work", at=sa.func.now())


def _sql_string(value: str) -> str:
    return render(sa.literal(value, sa.String))
