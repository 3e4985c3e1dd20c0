from __future__ import annotations

import os

from celery import Celery

from backend.backfill.settings import EngineSettings
from backend.config import Config

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def create_celery_app(config: Config | None = None) -> Celery:
    config = config or Config.from_env()
    settings = EngineSettings.from_env()
    app = Celery("worker", broker=config.celery_broker_url or DEFAULT_BROKER_URL, include=["worker.tasks"])
    app.conf.update(
        # A batch is acknowledged after it ran, and re-queued if its worker process
        # dies (acks_late alone does not re-queue a killed process's task).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One batch reserved per process: a long batch must not hold others back.
        worker_prefetch_multiplier=1,
        # Progress lives in our tables, not in a result backend.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # Redis redelivers a message not acknowledged within this time; batch
        # leases are kept far below it (EngineSettings checks).
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "backfill-recover": {
                "task": "worker.tasks.recover",
                "schedule": float(os.environ.get("BACKFILL_RECOVERY_INTERVAL", "30")),
            }
        },
    )
    return app


app = create_celery_app()
