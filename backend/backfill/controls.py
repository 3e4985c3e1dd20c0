"""The operator's controls of a run: pause, resume, cancel and retry.

The one list of them. Each says which service call it makes, the status it moves the
run to, the statuses it applies to (derived from the transition table in model.py,
the authority on what may happen to a run) and whether it takes a reason. The CLI
(`run_migrations.py --pause ...`), the HTTP API, its OpenAPI document and the status
page's buttons are all built from it. The service itself refuses a control that does
not apply (IllegalTransition); `applies_to` only tells callers in advance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from backend.backfill.dispatcher import SendBatches
from backend.backfill.model import ALLOWED_TRANSITIONS, RunStatus
from backend.backfill.runs import REASON_MAX_LENGTH

if TYPE_CHECKING:
    from backend.backfill.service import BackfillService

__all__ = ["CONTROLS", "Control", "NAMES", "REASON_MAX_LENGTH", "get", "possible"]


def _statuses_reaching(target: RunStatus, only_from: tuple[RunStatus, ...] | None = None) -> tuple[RunStatus, ...]:
    """The statuses from which the transition table allows `target`, in RunStatus order,
    narrowed to `only_from` where the control means one particular move."""
    return tuple(status for status in RunStatus.ALL
                 if target in ALLOWED_TRANSITIONS[status] and (only_from is None or status in only_from))


def _pause(service: "BackfillService", run_id: int, *, actor: str, reason: str | None, dispatch):
    return service.pause(run_id, actor=actor, reason=reason)


def _resume(service: "BackfillService", run_id: int, *, actor: str, reason: str | None, dispatch):
    return service.resume(run_id, actor=actor, dispatch=dispatch)


def _cancel(service: "BackfillService", run_id: int, *, actor: str, reason: str | None, dispatch):
    return service.cancel(run_id, actor=actor, reason=reason)


def _retry(service: "BackfillService", run_id: int, *, actor: str, reason: str | None, dispatch):
    return service.retry_failed(run_id, actor=actor, dispatch=dispatch)


@dataclass(frozen=True)
class Control:
    name: str
    label: str  # the status page's button
    summary: str  # what it does, for the OpenAPI document
    target: RunStatus
    applies_to: tuple[RunStatus, ...]
    takes_reason: bool  # resume and retry record the engine's own reason
    confirm: str | None  # a question the status page asks first (final controls)
    call: Callable[..., Any]  # one of the service calls above

    def apply(self, service: "BackfillService", run_id: int, *, actor: str, reason: str | None = None,
              dispatch: SendBatches | None = None):
        """Apply it through the service; returns the run as the service leaves it. Raises
        RunNotFound, or IllegalTransition when the run's status does not allow it.
        `dispatch` hands a Celery run's batches to the workers at once (resume, retry)."""
        return self.call(service, run_id, actor=actor, reason=reason, dispatch=dispatch)


CONTROLS: tuple[Control, ...] = (
    Control("pause", "Pause", "Pause: no new batch starts; batches in flight finish", RunStatus.PAUSED,
            _statuses_reaching(RunStatus.PAUSED), takes_reason=True, confirm=None, call=_pause),
    # The transition table also lets a pending, waiting or failed run become running,
    # but that is its start, its window or its retry: resume is for a paused run.
    Control("resume", "Resume", "Resume a paused run from its durable cursor", RunStatus.RUNNING,
            _statuses_reaching(RunStatus.RUNNING, only_from=(RunStatus.PAUSED,)), takes_reason=False,
            confirm=None, call=_resume),
    Control("cancel", "Cancel", "Cancel the run (final); batches in flight finish", RunStatus.CANCELLED,
            _statuses_reaching(RunStatus.CANCELLED), takes_reason=True,
            confirm="A cancelled run cannot be resumed.", call=_cancel),
    Control("retry", "Retry", "Retry a failed run: its failed batches run again with fresh attempts",
            RunStatus.RUNNING, _statuses_reaching(RunStatus.RUNNING, only_from=(RunStatus.FAILED,)),
            takes_reason=False, confirm=None, call=_retry),
)
BY_NAME: dict[str, Control] = {control.name: control for control in CONTROLS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def get(name: str) -> Control:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown control {name!r} (known: {', '.join(NAMES)})") from None


def possible(status: str) -> list[str]:
    """The controls that apply to a run in `status`, in the order of CONTROLS."""
    return [control.name for control in CONTROLS if status in control.applies_to]
