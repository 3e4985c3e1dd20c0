"""A worker started without CELERY_BROKER_URL says which broker it uses, before it
connects (issue 21): never a silent guess."""
import os
import signal
import subprocess
import sys

from tests.processes import ROOT, subprocess_env, wait_for
from worker.app import DEFAULT_BROKER_URL


def test_a_worker_without_a_broker_setting_names_the_default_it_uses(tmp_path):
    env = subprocess_env(DATABASE_URL=f"sqlite:///{tmp_path}/shop.db", BACKFILL_MODULES="tests.backfills_for_tests")
    env.pop("CELERY_BROKER_URL", None)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = wait_for(lambda: next((l for l in log.read_text().splitlines() if "CELERY_BROKER_URL" in l), None),
                        timeout=60, message="the worker's start-up warning")
    finally:  # stopped at once: it must not take anybody's tasks from that default broker
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert f"CELERY_BROKER_URL is unset: using the default broker {DEFAULT_BROKER_URL}" in line
