"""The metrics settings, read by backend.config.Config with the others.

PROMETHEUS_MULTIPROC_DIR is prometheus_client's own variable (it switches every
process that sees it to multiprocess mode, backend.metrics.exposition); it is
checked here because a missing directory would otherwise fail the first batch a
process counts. WORKER_METRICS_PORT turns on the Celery worker's exporter, which
needs that directory (its batches run in prefork children).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_WORKER_METRICS_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class MetricsSettings:
    multiprocess_dir: str | None = None
    worker_port: int | None = None  # None: the worker exports nothing
    worker_address: str = DEFAULT_WORKER_METRICS_ADDRESS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "MetricsSettings":
        """Raises ValueError with a one-line message naming the setting."""
        directory = env.get("PROMETHEUS_MULTIPROC_DIR") or env.get("prometheus_multiproc_dir") or None
        if directory is not None and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
            raise ValueError(f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a writable directory "
                             "(create it, empty, before the processes start)")
        port_text = (env.get("WORKER_METRICS_PORT") or "").strip()
        port = None
        if port_text:
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise ValueError(f"WORKER_METRICS_PORT={port_text!r} is not a port number (1-65535)")
            port = int(port_text)
            if directory is None:
                raise ValueError("WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR: the worker's batches run in "
                                 "prefork children, whose counters the exporter reads from that directory")
        address = (env.get("WORKER_METRICS_ADDRESS") or DEFAULT_WORKER_METRICS_ADDRESS).strip()
        return cls(multiprocess_dir=directory, worker_port=port, worker_address=address)
