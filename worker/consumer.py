"""The worker's consumer: Celery's, with one fix for losing a Redis broker (issue 17).

Celery 5.7.0 (celery/celery#10242, for GH-9705) handles a lost broker connection in
`Consumer.on_connection_error_after_connected` with `connection.collect()` and then
`connection.close()`. With kombu's Redis transport the second call can kill the worker:

- `collect()` closes the channels and then releases the transport, setting
  `transport.client = None`. A channel whose close is interrupted by the dead socket
  (the task channel while a BRPOP is outstanding: a free pool process, so a worker
  with concurrency >= 2 or one that just lost a pool process) stays open, still
  holding unacknowledged messages;
- `close()` closes that default channel again: its close restores the unacknowledged
  messages, which creates a new Redis connection pool from `transport.client`, now
  None, and kombu raises AttributeError("'NoneType' object has no attribute
  'hostname'") in `Channel._connparams`. That is no connection error, so it leaves
  Celery's reconnect loop and ends the worker: "Unrecoverable error".

The same AttributeError on a channel used after its transport was released is in
celery/kombu#582 (kombu 3.0) and celery/kombu#970 (kombu 4.2.2); no released Celery
has a fix (5.7.0 is the latest, 5.6.3 predates the regression but also the later
reconnect fixes). The fix here: once `collect()` has released the connection,
forget its default channel, so that the `close()` that follows has nothing left to
close; that is what `close()` did before Celery 5.7 (it was not called at all).
Redis is gone in this situation anyway: the unacknowledged messages could not be
restored; they stay in Redis's unacked set if it survived (restored after the
visibility timeout) and our beat's recovery re-dispatches their batches from the
database either way. tests/faults/test_redis_crash.py fails without it.

Enabled with `worker_consumer = "worker.consumer:Consumer"` (worker/app.py). Remove
when a Celery release no longer closes a collected connection (re-run the test).
"""
from __future__ import annotations

import functools

from celery.worker.consumer import Consumer as CeleryConsumer

# kombu's reconnect back-off (2 s, then 2 s more each try, up to 30 s; Celery has no
# setting for it) could leave a worker idle for 30 s with Redis back after a long
# outage. Retrying every few seconds costs a dead Redis nothing.
RECONNECT_INTERVAL_START = 0.5
RECONNECT_INTERVAL_STEP = 0.5
RECONNECT_INTERVAL_MAX = 3.0


def forget_default_channel_after_collect(connection) -> None:
    """Make this connection's `collect()` also drop its default channel, so that a
    later `close()` does not reopen anything on the released transport."""
    collect = connection.collect

    def collect_and_forget(*args, **kwargs):
        try:
            return collect(*args, **kwargs)
        finally:
            connection._default_channel = None

    connection.collect = collect_and_forget


def with_short_reconnect_backoff(connection) -> None:
    """This connection's ensure_connection retries from 0.5 s, at most 3 s apart."""
    connection.ensure_connection = functools.partial(
        connection.ensure_connection, interval_start=RECONNECT_INTERVAL_START,
        interval_step=RECONNECT_INTERVAL_STEP, interval_max=RECONNECT_INTERVAL_MAX)


class Consumer(CeleryConsumer):
    def ensure_connected(self, conn):
        with_short_reconnect_backoff(conn)
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc):
        if self.connection is not None:
            forget_default_channel_after_collect(self.connection)
        super().on_connection_error_after_connected(exc)
