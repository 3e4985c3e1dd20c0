from __future__ import annotations

import logging

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_init

from backend.backfill.service import check_configuration
from backend.backfill.settings import SettingsError
from backend.config import Config, ConfigError
from backend.logs import configure_logging
from worker import metrics

# Without CELERY_BROKER_URL a worker or beat uses this, and says so at start
# (warn_about_default_broker): never a silent guess.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_BROKER_WARNING = (f"CELERY_BROKER_URL is unset: using the default broker {DEFAULT_BROKER_URL} "
                          "(set CELERY_BROKER_URL to the broker `run_migrations.py --batched` sends to)")


def create_celery_app(config: Config | None = None) -> Celery:
    config = config or Config.from_env()
    settings = config.engine_settings
    # The backfill modules import and every named health check exists: a worker with
    # a bad configuration stops now, not at its first batch.
    check_configuration(config)
    if config.log_format == "json":  # in place of Celery's own set-up: one JSON object per line
        configure_logging("json")  # from now: Celery's start-up warnings too
        setup_logging.connect(lambda loglevel=None, **_kw: configure_logging("json", level=loglevel or "INFO"),
                              weak=False)
    metrics.install(config)  # WORKER_METRICS_PORT: the prefork children's counters over HTTP
    app = Celery("worker", broker=config.celery_broker_url or DEFAULT_BROKER_URL, include=["worker.tasks"])
    if not config.celery_broker_url:
        for started in (worker_init, beat_init):  # before connecting to it
            started.connect(warn_about_default_broker, weak=False)
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
        # leases are kept far below it (EngineSettings checks). A connect attempt to
        # an unreachable host gives up after 5 s (the reconnect loop then retries),
        # and idle broker sockets are kept alive by TCP.
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
        },
        broker_connection_retry_on_startup=True,
        # Surviving the broker's loss (issue 17): Celery's consumer with the fix of
        # worker/consumer.py (a lost Redis used to end the worker: "Unrecoverable
        # error: AttributeError(... 'hostname')"), and no limit on reconnecting (the
        # default gives up after 100 attempts, about 45 minutes, and exits).
        worker_consumer="worker.consumer:Consumer",
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # A batch running when the broker goes away finishes its own transaction
        # (the database keeps it exactly-once); its message is redelivered or the
        # beat's recovery re-dispatches the batch. Cancelling it would only redo work.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        beat_schedule={
            "backfill-recover": {
                "task": "worker.tasks.recover",
                "schedule": settings.recovery_interval_seconds,
            }
        },
    )
    return app


def warn_about_default_broker(**_kwargs) -> None:
    logging.getLogger("worker").warning(DEFAULT_BROKER_WARNING)


try:
    config = Config.from_env()  # read once; the tasks' engine is built from it (worker.tasks)
    app = create_celery_app(config)
except (ConfigError, SettingsError) as exc:
    # `celery -A worker` would wrap it in "Couldn't import 'worker'" and a traceback.
    raise SystemExit(f"Error: configuration error: {exc}") from None
