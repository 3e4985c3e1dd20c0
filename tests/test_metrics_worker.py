"""The counters of several processes, summed (prometheus_client's multiprocess mode),
and a real `celery -A worker worker` (prefork, 2 children) exporting its children's
batch outcomes on WORKER_METRICS_PORT while logging one JSON object per line."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from celery import Celery

from backend.backfill.model import RunStatus
from tests.backfill_helpers import insert_rows, touch_service
from tests.processes import ROOT, RedisServer, free_port, subprocess_env, wait_for
from tests.test_metrics import Samples

COUNT_EVENTS = """
from types import SimpleNamespace
from backend.metrics import events
for batch_id in range(3):
    events.batch_outcome(SimpleNamespace(kind="succeeded", batch_id=batch_id, run_id=1, rows=10, error=None,
                                         retry_in=0.0))
events.lease_taken_over()
"""
EXPOSE = "from backend.metrics.exposition import exposition; print(exposition().decode())"


def run_python(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(**env),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_counters_of_two_processes_are_summed_by_the_exporter(tmp_path):
    directory = str(tmp_path)
    run_python(COUNT_EVENTS, PROMETHEUS_MULTIPROC_DIR=directory)
    run_python(COUNT_EVENTS, PROMETHEUS_MULTIPROC_DIR=directory)  # exited: its files stay
    samples = Samples.parse(run_python(EXPOSE, PROMETHEUS_MULTIPROC_DIR=directory))
    assert samples.get_value("backfill_batch_outcomes_total", outcome="succeeded") == 6
    assert samples.get_value("backfill_lease_takeovers_total") == 2


@pytest.fixture
def redis_server(redis_available):
    server = RedisServer().start()
    yield server
    server.kill()


def scrape_worker(port: int) -> Samples | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return Samples.parse(response.read().decode())
    except OSError:
        return None


def test_a_prefork_worker_exports_its_childrens_batches_and_logs_json(pg_url, redis_server, tmp_path):
    service = touch_service(pg_url)
    insert_rows(service.engine, range(1, 101))  # test_touch: 10 batches of 10
    run_id = service.schedule("test_touch")
    directory, port = tmp_path / "prometheus", free_port()
    directory.mkdir()
    env = subprocess_env(DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_server.url,
                         BACKFILL_MODULES="tests.backfills_for_tests", LOG_FORMAT="json",
                         PROMETHEUS_MULTIPROC_DIR=str(directory), WORKER_METRICS_PORT=str(port))
    stdout, stderr = open(tmp_path / "stdout", "wb"), open(tmp_path / "stderr", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO", "--concurrency", "2",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"metrics{port}@%h"],
        cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    try:
        Celery("client", broker=redis_server.url).send_task("worker.tasks.start_run", args=[run_id])
        wait_for(lambda: service.get_run(run_id).status in RunStatus.FINISHED, timeout=90,
                 message="the run to finish")
        samples = wait_for(lambda: scrape_worker(port), timeout=10, message="the worker's exporter")
    finally:
        worker.terminate()
        worker.wait(30)
        stdout.close()
        stderr.close()
        service.engine.dispose()
    logged = (tmp_path / "stderr").read_text()
    assert service.get_run(run_id).status == RunStatus.COMPLETED, logged[-3000:]

    # Counted in the two children, served by the main process.
    assert samples.get_value("backfill_batch_outcomes_total", outcome="succeeded") == 10

    records = [json.loads(line) for line in logged.splitlines() if line.strip()]  # every line is one object
    succeeded = [r for r in records if r.get("outcome") == "succeeded" and r.get("run_id") == run_id]
    assert len(succeeded) == 10, logged[-3000:]
    assert {type(r["batch_id"]) for r in succeeded} == {int}
    assert all(r["level"] == "info" and r["logger"] == "backend.backfill.events" for r in succeeded)
    assert any("celery@" in r["message"] or "ready" in r["message"] for r in records)  # Celery's own lines too
