"""The Celery application: `celery -A worker worker` and `celery -A worker beat`.

Thin: tasks only call the backfill engine. Settings follow Celery's guidance for
long work split into many small idempotent tasks.
"""
from worker.app import app

__all__ = ["app"]
