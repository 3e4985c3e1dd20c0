"""One place that decides how a service's unit of work ends."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.orm import Session


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """Commit if the block succeeds, roll back on any error, so that a failed
    service call never leaves half its writes pending in a shared session."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
