"""Fault 3: Redis killed in the middle of a run and restarted empty on the same port.

Every queued message, every unacknowledged one and every retry countdown is lost.
The workers and the beat reconnect by themselves; the beat's recovery then hands
out again, from the database, the batches whose messages vanished (pending batches
dispatched over BACKFILL_REDISPATCH_AFTER_SECONDS ago, running ones whose lease
expired), and the run completes with every row exactly once.
"""
from __future__ import annotations

import json
import time

import pytest
import redis

from tests.faults.support import assert_exactly_once, task_outcomes, wait_until

IDS = list(range(1, 61))  # 12 batches of 5
OUTSIDE = [1000, 1001]


def queued_messages(stack) -> dict[str, str]:
    """The messages waiting in Redis: task id -> task name."""
    messages = redis.Redis.from_url(stack.redis.url, socket_timeout=2).lrange("celery", 0, -1)
    headers = [json.loads(message)["headers"] for message in messages]
    return {header["id"]: header["task"] for header in headers}


# Celery's publish retry policy gives up after 3 retries 0.2 s apart; with margin.
PUBLISH_GIVE_UP_SECONDS = 2.0


def settled(stack, worker, run_id: int) -> bool:
    """The worker has finished the batch it held: by its log, or by the database when
    its main process is stuck reconnecting to the broker (it logs no task result until
    the broker is back, though the pool process has finished): no batch is running."""
    return idle(worker) or not any(batch.status == "running" for batch in stack.batches(run_id))


def idle(worker) -> bool:
    """Every batch task the worker received has ended (succeeded, or raised because
    it could not publish the next batches)."""
    received = task_outcomes(worker, "run_batch", " received")
    ended = sum(task_outcomes(worker, "run_batch", outcome) for outcome in (" succeeded in ", " raised unexpected", " retry: "))
    return received == ended


@pytest.mark.slow
def test_redis_restarted_empty_mid_run(stack):
    """One single-process worker and two batches in flight (max_parallel 2): one in
    the worker's hands, the other's message waiting in Redis. Redis is killed then
    and kept down until the worker has finished what it held (its attempt to publish
    the next batches failing): whatever the timing, some batch's message is lost.
    The restarted Redis is empty."""
    worker = stack.worker(concurrency=1)
    stack.beat()
    run_id = stack.start_run("test_touch_slow", IDS, outside=OUTSIDE)
    stack.wait_run(run_id, lambda run: run.batches_done >= 2, "two batches done")
    wait_until(lambda: queued_messages(stack), 20, "a batch message waiting in Redis")
    waiting = queued_messages(stack)

    stack.redis.kill()
    wait_until(lambda: "Connection to broker lost" in worker.log() and settled(stack, worker, run_id), 30,
               "the worker to notice the broker is gone and finish what it held", diagnostics=stack.logs)
    time.sleep(PUBLISH_GIVE_UP_SECONDS)  # its attempts to publish the next batches fail meanwhile
    assert stack.run(run_id).status == "running"
    stack.restart_redis_empty()
    # The messages that waited are gone. (The beat and the worker may publish new
    # ones as soon as they reconnect, so the new Redis is not checked for emptiness.)
    assert not waiting.keys() & queued_messages(stack).keys()

    stack.wait_finished(run_id, timeout=60)
    assert_exactly_once(stack, run_id, IDS, OUTSIDE)
    assert "recovery re-dispatched batches" in worker.log(), stack.logs()
