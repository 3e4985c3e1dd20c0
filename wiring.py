"""How the entry points (run.py, run_migrations.py, wsgi.py) connect backend/ to the
Celery workers: they hand it a dispatcher and a notifier, so that backend/ never
imports worker/.
"""
from __future__ import annotations

from backend.backfill.dispatcher import Dispatcher
from backend.backfill.notify import Notifier, in_process_notifier
from backend.config import Config


def celery_dispatcher(config: Config) -> Dispatcher | None:
    """The workers' dispatcher when a broker is configured; None without one (batches
    then run in the process that drives the run, or wait for the workers' recovery)."""
    if not config.celery_broker_url:
        return None
    from worker.dispatcher import CeleryDispatcher  # builds the Celery app: only with a broker

    return CeleryDispatcher()


def transition_notifier(config: Config) -> Notifier | None:
    """Where the webhook notifications of the runs' status changes go: through the
    workers (retried with back-off) when a broker is configured, else a thread of this
    process; None without BACKFILL_NOTIFY_WEBHOOK_URL."""
    if not config.notify_webhook_urls:
        return None
    if not config.celery_broker_url:
        return in_process_notifier(config.notify_webhook_urls)
    from worker.dispatcher import CeleryNotifier  # builds the Celery app: only with a broker

    return CeleryNotifier(config.notify_webhook_urls)
