"""Whether the database has what revision 0013 added to the engine's tables: the
error history (backfill_batch_errors) and the announcement claim
(backfill_transitions.announced).

The engine also runs on older schemas: `run_migrations.py --batched` completes the
backfill a revision waits for before it applies the later revisions, 0013 among
them. On such a schema a batch's failed attempts are not kept (its `error` column
still says the last one) and status changes are not announced (hooks and
notifications start once 0013 is applied). The answer is kept per engine once it is
yes, and asked again at most every RECHECK_SECONDS while it is no; the engine's
writes to 0013's table and column ask the database each time (`cached=False`: a
status change or a failed attempt is rare), so that a process that saw 0013 applied
and then runs a downgrade past it (the revisions' unschedule_backfill writes a
transition) never writes to a column that is gone.
"""
from __future__ import annotations

import threading
import time
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

RECHECK_SECONDS = 10.0

_answers: "weakref.WeakKeyDictionary[Engine, float | bool]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def applied(connection: Connection, *, cached: bool = True) -> bool:
    """True when 0013's table and column exist (both come in its one transaction).
    `cached=False` asks the database now: for a write that must not assume a table a
    downgrade may have dropped since."""
    engine = connection.engine
    with _lock:
        known = _answers.get(engine) if cached else None
    if known is True:
        return True
    if known is not None and time.monotonic() < known:
        return False
    present = sa.inspect(connection).has_table("backfill_batch_errors")
    with _lock:
        _answers[engine] = True if present else time.monotonic() + RECHECK_SECONDS
    return present
