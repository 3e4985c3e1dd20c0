"""One place that decides how a service's unit of work ends."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.orm import Session

from backend.db import WRITE_TRANSACTION_OPTIONS


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """Commit if the block succeeds, roll back on any error, so that a failed
    service call never leaves half its writes pending in a shared session."""
    if not session.in_transaction():
        # SQLite: take the write lock at BEGIN, so that a concurrent writer's commit
        # between our first read and our first write makes us wait (busy_timeout)
        # rather than fail with "database is locked" (see backend.db.write_transaction).
        session.connection(execution_options=WRITE_TRANSACTION_OPTIONS)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
