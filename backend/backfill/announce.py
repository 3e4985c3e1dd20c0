"""After a run's status changed and the change committed: the backfill's lifecycle
hook, then the notification.

Why the transition row is the record to announce from. Every status change goes
through runs.transition, in some transaction: a batch's own (the last batch
completes its run), the claim's, a control's, a migration's gate. Whoever opened that
transaction may not know a change happened in it, and SQLAlchemy Core has no
"after commit" event. The row in backfill_transitions does know, and it is written
`announced = false` in that same transaction: it exists for others exactly when the
change committed, and disappears with a rollback. So, after each of its operations
(service.py), a process claims the changes not announced yet, in a short
transaction of its own (`UPDATE ... SET announced = true WHERE NOT announced
RETURNING`), and announces the ones it claimed. Two processes never claim the same
row (PostgreSQL's row locks make the second UPDATE skip it; SQLite has one writer),
so each change is announced once however many workers run; never inside a batch's
transaction; and a change left behind by a process that died before its claim is
claimed by the next one that looks (the beat's recovery looks every minute). A
process that dies between its claim and the hook loses that announcement: at most
once, never twice.

Hooks (definition.Backfill): on_start (pending -> running), on_resume (paused or
failed -> running), on_pause, on_complete, on_fail, on_cancel, each called as
`hook(run, transition)` with the run as it is now. The engine's own waits (running
<-> waiting, for a window or health) call no hook. A hook that raises is logged
and changes nothing: the run has moved already.
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.backfill import notify, runs, since_0013
from backend.backfill.model import Run, RunStatus, Transition
from backend.backfill.registry import Catalog
from backend.backfill.state import backfill_transitions
from backend.db import write_transaction

log = logging.getLogger(__name__)


def hook_name(transition: Transition) -> str | None:
    """The Backfill method this change calls, if any."""
    to, came_from = transition.to_status, transition.from_status
    if to == RunStatus.RUNNING:
        return {RunStatus.PENDING: "on_start", RunStatus.PAUSED: "on_resume",
                RunStatus.FAILED: "on_resume"}.get(came_from)
    return {RunStatus.PAUSED: "on_pause", RunStatus.COMPLETED: "on_complete", RunStatus.FAILED: "on_fail",
            RunStatus.CANCELLED: "on_cancel"}.get(to)


def claim(engine: Engine) -> list[tuple[Run, Transition]]:
    """The committed changes nobody announced yet, now this process's, oldest first,
    each with its run as it is now. A read first: usually there is none."""
    unannounced = sa.select(backfill_transitions.c.id).where(sa.not_(backfill_transitions.c.announced))
    with engine.connect() as connection:
        if not since_0013.applied(connection) or connection.execute(unannounced.limit(1)).first() is None:
            return []
    with write_transaction(engine) as connection:
        rows = connection.execute(
            sa.update(backfill_transitions).where(sa.not_(backfill_transitions.c.announced))
            .values(announced=True).returning(*runs.TRANSITION_COLUMNS)
        ).mappings().all()
        claimed = sorted((Transition.from_row(row) for row in rows), key=lambda t: t.id)
        now = {run_id: runs.get_run(connection, run_id) for run_id in {t.run_id for t in claimed}}
    return [(now[t.run_id], t) for t in claimed]


class Announcer:
    """Claims and announces the committed status changes (see the module's docstring)."""

    def __init__(self, catalog: Catalog, notifier: notify.Notifier | None = None):
        self.catalog, self.notifier = catalog, notifier

    def announce(self, engine: Engine) -> int:
        """Announce what is waiting; returns how many changes this process claimed."""
        claimed = claim(engine)
        for run, transition in claimed:
            self._call_hook(run, transition)
            if self.notifier is not None:
                try:
                    self.notifier.send(notify.message(run, transition))
                except Exception:
                    log.exception("backfill notification of run %s (%s) not handed over", run.id,
                                  transition.to_status)
        return len(claimed)

    def _call_hook(self, run: Run, transition: Transition) -> None:
        name = hook_name(transition)
        if name is None or run.name not in self.catalog:
            return
        try:
            getattr(self.catalog.get(run.name), name)(run, transition)
        except Exception:
            log.exception("backfill %s: %s of run %s raised; the run is %s all the same", run.name, name, run.id,
                          transition.to_status)
