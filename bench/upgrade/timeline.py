"""The upgrade's time line as disjoint segments (baseline, revisions, backfills and
the gaps between them), so that every shop statement and lock wait has one place.

Why from the database: a revision is over when its alembic_version row commits,
which the sampler sees to within one sample; an `applied <rev>` line of the child
fills in a revision committed between two samples. A revision starts at the latest
earlier boundary: the previous commit, the end of a backfill, or the moment the
schema lock was taken (a gated upgrade takes it anew after each backfill). Backfills
are the runs' own started_at / finished_at.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

BASELINE, REVISION, BACKFILL, OTHER = "baseline", "revision", "backfill", "other"
APPLIED_LINE = re.compile(r"^applied (?P<revision>\S+?)(?::\s|$)")


@dataclass(frozen=True)
class Segment:
    kind: str
    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 0.0)


@dataclass(frozen=True)
class BackfillRun:
    name: str
    run_id: int
    status: str
    started: float | None
    finished: float | None
    rows_done: int = 0


def applied_times(lines: Iterable[tuple[float, str]]) -> dict[str, float]:
    """Revision -> when the child printed `applied <revision>: ...` (just before its commit)."""
    found: dict[str, float] = {}
    for at, line in lines:
        match = APPLIED_LINE.match(line.strip())
        if match:
            found.setdefault(match["revision"], at)
    return found


def commit_times(revisions: Sequence[str], observed: Sequence[tuple[float, str | None]],
                 applied: dict[str, float]) -> dict[str, float]:
    """When each of `revisions` (oldest first) committed: the first sample showing it in
    alembic_version; else its `applied` line; else the first sample showing a later
    one. Revisions never seen committed are left out."""
    order = {revision: index for index, revision in enumerate(revisions)}
    first_seen: dict[str, float] = {}
    for at, version in observed:
        if version in order:
            first_seen.setdefault(version, at)
    commits: dict[str, float] = {}
    for index, revision in enumerate(revisions):
        if revision in first_seen:
            commits[revision] = first_seen[revision]
        elif revision in applied:
            commits[revision] = applied[revision]
        else:
            later = [first_seen[r] for r in revisions[index + 1:] if r in first_seen]
            if later:
                commits[revision] = min(later)
    return commits


def build_segments(*, baseline_start: float, child_start: float, child_end: float, revisions: Sequence[str],
                   commits: dict[str, float], lock_starts: Sequence[float],
                   backfills: Sequence[BackfillRun]) -> list[Segment]:
    """Disjoint segments from baseline_start to child_end, in time order; what no
    revision or backfill explains (start-up, gate checks, scheduling) is `other`."""
    boundaries = sorted([child_start, *commits.values(), *lock_starts,
                         *(run.finished for run in backfills if run.finished is not None)])
    fixed: list[Segment] = []
    for revision in revisions:
        if revision not in commits:
            continue
        end = commits[revision]
        start = max((b for b in boundaries if b < end), default=child_start)
        fixed.append(Segment(REVISION, revision, start, end))
    for run in backfills:
        if run.started is None:
            continue
        start = max(run.started, child_start)
        end = min(run.finished if run.finished is not None else child_end, child_end)
        if end > start:
            fixed.append(Segment(BACKFILL, run.name, start, end))
    fixed.sort(key=lambda segment: (segment.start, segment.end))

    segments = [Segment(BASELINE, "before the upgrade", baseline_start, child_start)]
    cursor, previous = child_start, None
    for segment in fixed:
        start = max(segment.start, cursor)
        if start > cursor:
            segments.append(Segment(OTHER, _gap_name(previous), cursor, start))
        end = max(segment.end, start)
        segments.append(replace(segment, start=start, end=end))
        cursor, previous = end, segment.name
    if child_end > cursor:
        segments.append(Segment(OTHER, "(exit)" if previous else "(whole run)", cursor, child_end))
    return segments


def _gap_name(previous: str | None) -> str:
    return f"(after {previous})" if previous else "(start-up)"
