"""How the entry points (run.py, run_migrations.py, wsgi.py) connect backend/ to the
Celery workers: they hand it a dispatcher, so that backend/ never imports worker/.
"""
from __future__ import annotations

from backend.backfill.dispatcher import Dispatcher
from backend.config import Config


def celery_dispatcher(config: Config) -> Dispatcher | None:
    """The workers' dispatcher when a broker is configured; None without one (batches
    then run in the process that drives the run, or wait for the workers' recovery)."""
    if not config.celery_broker_url:
        return None
    from worker.dispatcher import CeleryDispatcher  # builds the Celery app: only with a broker

    return CeleryDispatcher()
