"""How one backfill is paced: its windows, pause, batch sizing, health checks and
failure tolerance, from its own attributes or else the global settings."""
from __future__ import annotations

from dataclasses import dataclass

from backend.backfill.definition import Backfill
from backend.backfill.optimizer import SizingPolicy
from backend.backfill.settings import EngineSettings
from backend.backfill.windows import WindowSchedule, parse_windows


@dataclass(frozen=True)
class RunPolicy:
    schedule: WindowSchedule
    pause_seconds: float
    sizing: SizingPolicy | None  # None: the run keeps its batch size
    health_checks: tuple[str, ...]
    max_failed_share: float
    min_batches_for_failed_share: int

    @classmethod
    def of(cls, backfill: Backfill, settings: EngineSettings) -> "RunPolicy":
        schedule = parse_windows(backfill.windows) if backfill.windows is not None else settings.maintenance_windows
        target = backfill.target_batch_seconds if backfill.target_batch_seconds is not None \
            else settings.target_batch_seconds
        sizing = None
        if target:
            sizing = SizingPolicy(
                target_seconds=target,
                min_size=backfill.min_batch_size or settings.min_batch_size,
                max_size=backfill.max_batch_size or settings.max_batch_size,
            )
        return cls(
            schedule=schedule,
            pause_seconds=backfill.pause_seconds if backfill.pause_seconds is not None else settings.pause_seconds,
            sizing=sizing,
            health_checks=backfill.health_checks if backfill.health_checks is not None else settings.health_checks,
            max_failed_share=backfill.max_failed_share,
            min_batches_for_failed_share=backfill.min_batches_for_failed_share,
        )

    def failed_too_often(self, failed: int, succeeded: int) -> bool:
        if failed == 0:
            return False
        if self.max_failed_share <= 0:
            return True
        finished = failed + succeeded
        return finished >= self.min_batches_for_failed_share and failed / finished > self.max_failed_share
