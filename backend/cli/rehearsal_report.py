"""What `run_migrations.py --rehearse` prints: per revision its time, locks and
lock_timeout waits, per backfill its time and the estimate for the real database,
and the bound on how long the shop may stall."""
from __future__ import annotations

import math

from backend.migrations.safety.rehearsal import SAMPLING_INTERVAL, Rehearsal, RevisionTiming, duration_text
from backend.migrations.safety.locks import LockHeld
from backend.migrations.safety.timing import DEFAULT

WAITS_SHOWN = 3  # lock wait messages printed per revision


def report_lines(rehearsal: Rehearsal) -> list[str]:
    kind = "PostgreSQL" if rehearsal.kind == "postgresql" else "SQLite"
    lines = [f"rehearsal of {kind} database {rehearsal.source}",
             f"copy: {rehearsal.copy.name}, made with {rehearsal.copy.method} in {rehearsal.copy_seconds:.2f} s"]
    start = ", ".join(rehearsal.start) or "base"
    if not rehearsal.phases:
        return lines + [f"nothing to rehearse: the database is already at head ({rehearsal.head})",
                        "the copy was dropped; the database was not changed"]
    lines.append(f"from {start} to {rehearsal.head}")
    width = max([len(r.revision) for p in rehearsal.phases for r in p.revisions] +
                [len(b.name) + 9 for p in rehearsal.phases for b in p.backfills] + [20])
    for phase in rehearsal.phases:
        lines.append(f"{phase.title}: {phase.seconds:.2f} s")
        for revision in phase.revisions:
            lines.extend(_revision_lines(revision, width))
        for backfill in phase.backfills:
            rate = f"{backfill.rows_per_second:,.0f} rows/s" if backfill.rows_per_second else "- rows/s"
            longest = f", longest batch {backfill.longest_batch_ms} ms" if backfill.longest_batch_ms is not None else ""
            batches = f"{backfill.batches} batch{'es' if backfill.batches != 1 else ''}"
            lines.append(f"  {'backfill ' + backfill.name:<{width}}  {backfill.seconds:8.3f} s   "
                         f"{backfill.rows:,} rows, {rate}, {batches}{longest}")
            lines.append(f"  {'':<{width}}  window: {backfill.window}")
    first = rehearsal.phases[0]
    revisions = sum(r.seconds for r in first.revisions)
    backfills = sum(b.seconds for b in first.backfills)
    lines.append(f"estimate for the real upgrade: {duration_text(first.seconds)} on this data "
                 f"(revisions {revisions:.2f} s, backfills {backfills:.2f} s, run here without windows or pauses)")
    lines.append(_bound_line(rehearsal.kind, first.revisions))
    lines.append(f"locks: {rehearsal.lock_method}")
    lines.append("the copy was dropped; the database was not changed")
    return lines


def _revision_lines(revision: RevisionTiming, width: int) -> list[str]:
    """The revision's time and locks; on PostgreSQL a second line with the
    lock_timeout it ran under and the lock waits it retried, then those waits."""
    text = _lock_text(revision.lock, revision.sampling_gap)
    if revision.longest_lock:
        text += f"; held longer: {_lock_text(revision.longest_lock)}"
    lines = [f"  {revision.revision:<{width}}  {revision.seconds:8.3f} s   lock: {text}"]
    if revision.lock is not None and revision.lock.table == "(whole database)":
        return lines  # SQLite: no lock_timeout, no lock queue
    waits = len(revision.lock_waits)
    lines.append(f"  {'':<{width}}  {'':8}     {_timeouts_text(revision)}, "
                 f"{'no lock wait' if not waits else f'{waits} lock wait{_s(waits)} (retried)'}")
    lines.extend(f"  {'':<{width}}  {'':8}       {message}" for message in revision.lock_waits[:WAITS_SHOWN])
    if waits > WAITS_SHOWN:
        lines.append(f"  {'':<{width}}  {'':8}       ... and {waits - WAITS_SHOWN} more")
    return lines


def _timeouts_text(revision: RevisionTiming) -> str:
    text = f"lock_timeout {', '.join(_timeout(ms) for ms in _sorted(revision.lock_timeouts)) or '-'}"
    lifted = revision.autocommit_lock_timeouts - revision.lock_timeouts
    if lifted:
        text += f" ({', '.join(_timeout(ms) for ms in _sorted(lifted))} in its autocommit steps)"
    return text


def _sorted(timeouts) -> list[int | None]:
    return sorted(timeouts, key=lambda ms: -1 if ms is DEFAULT else ms)


def _timeout(ms: int | None) -> str:
    if ms is DEFAULT:
        return "server default"
    if ms == 0:
        return "none"
    return f"{ms / 1000:g} s" if ms >= 1000 and ms % 100 == 0 else f"{ms} ms"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _bound_line(kind: str, revisions: list[RevisionTiming]) -> str:
    """How long the real upgrade stalls the shop at most: a shop statement waits behind
    a revision waiting for its lock (at most lock_timeout), then behind the lock held."""
    if kind != "postgresql":
        held = max((r.lock.seconds for r in revisions if r.lock), default=0.0)
        return (f"stall bound: each revision blocks writes for its transaction, at most {held:.3f} s "
                f"(SQLite has no lock_timeout)")
    blocking = [r for r in revisions if r.blocking is not None]
    worst_run = max(blocking, key=lambda r: _at_most(r.blocking), default=None)
    gap = math.ceil(max((r.sampling_gap or 0.0 for r in revisions), default=0.0) * 1000) / 1000
    if worst_run is None:
        held, text = gap, f"no lock that blocks reads or writes seen (any lasted under {gap:.3f} s, the longest gap " \
                           f"between samples)"
    else:
        held = _at_most(worst_run.blocking)
        text = (f"a lock that blocks the shop held at most {held:.3f} s ({worst_run.revision}: "
                f"{worst_run.blocking.mode} on {worst_run.blocking.table}, {worst_run.blocking.effect})")
    timeouts = {ms for r in revisions for ms in r.lock_timeouts}
    if not timeouts or DEFAULT in timeouts or 0 in timeouts:
        return (f"stall bound: {text}; some statements ran without a lock_timeout set by the migration, so "
                f"a wait for a lock there could stall the shop as long as the transaction it waits for")
    timeout = max(timeouts)
    return (f"stall bound: {text}; lock_timeout {_timeout(timeout)}: a shop statement waits at most about "
            f"{held + timeout / 1000:.3f} s behind a revision")


def _at_most(lock: LockHeld) -> float:
    """Rounded up to the millisecond: a bound must not come out smaller than it is."""
    return math.ceil((lock.at_most if lock.at_most is not None else lock.seconds) * 1000) / 1000


def _lock_text(lock: LockHeld | None, gap: float | None = None) -> str:
    if lock is None:
        return f"no table lock seen (each lasted under {max(gap or 0.0, SAMPLING_INTERVAL) * 1000:.0f} ms)"
    if lock.table == "(whole database)":
        return f"database write lock for {lock.seconds:.3f} s (the transaction)"
    held = f"{lock.seconds:.3f} s" if lock.seconds >= SAMPLING_INTERVAL else f"under {SAMPLING_INTERVAL:.3f} s"
    effect = f" ({lock.effect})" if lock.effect else ""
    return f"{lock.mode} on {lock.table} for {held}{effect}"
