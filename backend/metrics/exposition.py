"""What one scrape returns, and the workers' HTTP exporter.

A scrape is answered from a registry made for it: the process counters
(backend.metrics.events) and, on the web app, the database collector.

Where the process counters come from depends on PROMETHEUS_MULTIPROC_DIR, as
prometheus_client documents for forking servers: set, every process (each Celery
prefork child, each gunicorn worker, a script) writes its values to files in that
directory and the scrape adds up all the files (MultiProcessCollector), so a counter
is the sum over the processes that counted it, even those that exited; unset, the
scrape returns this process's own counters.

Celery workers use the first: their batches run in prefork children that live and
die with the pool, and a port per child could not be scraped reliably (children are
replaced after max-tasks-per-child or a crash, each with a new port). The worker's
main process serves the directory on WORKER_METRICS_PORT (worker/metrics.py).
"""
from __future__ import annotations

import os
from typing import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.registry import Collector

from backend.metrics import events

MULTIPROC_DIR_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")  # prometheus_client's names
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    for name in MULTIPROC_DIR_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


class _ProcessCounters(Collector):
    """This process's event counters (events.REGISTRY), as one collector."""

    def collect(self):
        return events.REGISTRY.collect()


def scrape_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry with the process counters (every process's, in multiprocess mode)
    and `collectors` (e.g. the database collector)."""
    events.ensure_registered()
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCounters())
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(collectors: Iterable[Collector] = ()) -> bytes:
    """One scrape in the Prometheus text format (CONTENT_TYPE)."""
    return generate_latest(scrape_registry(*collectors))
