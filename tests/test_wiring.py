"""wiring.py and wsgi.py: the entry points hand backend/ the Celery dispatcher when a
broker is configured, and nothing (no Celery loaded) without one."""
from __future__ import annotations

import subprocess
import sys

from backend.config import Config
from tests.processes import ROOT, subprocess_env


def test_without_a_broker_there_is_no_dispatcher_and_celery_is_not_loaded():
    code = ("import sys, wiring, wsgi; from backend.config import Config\n"
            "config = Config.from_env({'DATABASE_URL': 'sqlite://'})\n"
            "app = wsgi.create_app(config)\n"
            "print(wiring.celery_dispatcher(config), app.extensions['backfill_dispatcher'], 'celery' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None", "False"]


def test_with_a_broker_the_celery_dispatcher_sends_through_the_workers_tasks(monkeypatch):
    import wiring
    import worker.tasks

    sent, started = [], []
    monkeypatch.setattr(worker.tasks, "dispatch", lambda ids, countdown=0.0: sent.append((list(ids), countdown)))
    monkeypatch.setattr(worker.tasks.start_run, "delay", started.append)
    config = Config.from_env({"DATABASE_URL": "sqlite://", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})

    dispatcher = wiring.celery_dispatcher(config)
    dispatcher.send([3, 4], countdown=2.0)
    dispatcher.start(7)

    assert sent == [([3, 4], 2.0)] and started == [7]
