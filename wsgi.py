"""The web app as gunicorn serves it: `gunicorn 'wsgi:create_app()'` (see the
Dockerfile); run.py serves the same app with Flask's development server.

This is where the app meets the Celery workers: with CELERY_BROKER_URL set, it is
handed the workers' dispatcher, so that resuming or retrying a Celery run from the
operations API sends its batches at once (without a broker the workers' recovery
pass, or the next `run_migrations.py --batched`, picks them up), and the notifier
that sends the runs' webhook notifications through the workers. backend/ itself
never imports worker/.
"""
from __future__ import annotations

from flask import Flask

from backend.config import Config
from backend.web import create_app as create_web_app
from wiring import celery_dispatcher, transition_notifier


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    return create_web_app(config, dispatcher=celery_dispatcher(config), notifier=transition_notifier(config))
