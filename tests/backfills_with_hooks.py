"""A backfill with every lifecycle hook, for tests/test_hooks.py: each call is
recorded with what a separate connection saw of its transition at that moment (it
must be committed, and claimed)."""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.registry import register
from backend.backfill.state import backfill_transitions
from tests.backfills_for_tests import TouchRows

# (hook, run id, run status, transition id, from, to, committed and claimed as seen from outside)
CALLS: list[tuple] = []
ENGINE: list[sa.Engine] = []  # the test's engine, for the look from outside
FAIL_IN: set[str] = set()  # hooks that raise


def _seen_from_outside(transition_id: int) -> bool:
    with ENGINE[0].connect() as connection:
        return bool(connection.execute(
            sa.select(backfill_transitions.c.announced).where(backfill_transitions.c.id == transition_id)
        ).scalar())


def _record(name: str, run, transition) -> None:
    CALLS.append((name, run.id, run.status, transition.id, transition.from_status, transition.to_status,
                  _seen_from_outside(transition.id) if ENGINE else None))
    if name in FAIL_IN:
        raise RuntimeError(f"{name} hook fails on purpose")


@register
class TouchWithHooks(TouchRows):
    name = "test_touch_hooked"

    def on_start(self, run, transition):
        _record("on_start", run, transition)

    def on_pause(self, run, transition):
        _record("on_pause", run, transition)

    def on_resume(self, run, transition):
        _record("on_resume", run, transition)

    def on_complete(self, run, transition):
        _record("on_complete", run, transition)

    def on_fail(self, run, transition):
        _record("on_fail", run, transition)

    def on_cancel(self, run, transition):
        _record("on_cancel", run, transition)
