"""The worker's exporter: its prefork children's counters, over HTTP.

A Celery worker runs its batches in prefork children; with PROMETHEUS_MULTIPROC_DIR
set, each child writes its counters to files there (prometheus_client's multiprocess
mode, the one its documentation gives for pre-forking servers). With
WORKER_METRICS_PORT set, the worker's main process (which runs no task and outlives
its children) serves the sum of those files on that port, at any path, from a
thread started when the worker starts (`worker_init`). The beat and `celery inspect`
never start it.

The directory must be empty when the worker starts (the compose file mounts a fresh
tmpfs); a child's files stay after it exits, so the counters never go back.
"""
from __future__ import annotations

import logging

from celery.signals import worker_init
from prometheus_client import start_http_server

from backend.config import Config
from backend.metrics.exposition import scrape_registry

log = logging.getLogger(__name__)


def install(config: Config) -> None:
    """Serve the counters when the worker starts, if WORKER_METRICS_PORT is set."""
    settings = config.metrics
    if settings.worker_port is None:
        return

    def serve(**_kwargs) -> None:
        start_http_server(settings.worker_port, settings.worker_address, registry=scrape_registry())
        log.info("metrics on http://%s:%s/metrics", settings.worker_address, settings.worker_port)

    worker_init.connect(serve, weak=False)
