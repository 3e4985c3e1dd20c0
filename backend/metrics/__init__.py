"""Prometheus metrics of the backfills and the schema changes (docs/metrics.md).

    events.py      the process counters: the engine calls one function per event
    database.py    the runs' figures, read from the database at scrape time
    exposition.py  what a scrape returns (multiprocess mode with PROMETHEUS_MULTIPROC_DIR)
    web.py         GET /metrics on the web app, behind the admin token
    settings.py    PROMETHEUS_MULTIPROC_DIR and the worker exporter's WORKER_METRICS_PORT
"""
