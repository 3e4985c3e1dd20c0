"""Fixtures of the fault-injection suite: each test gets its own PostgreSQL database
(tests/conftest.py's pg_url), its own redis-server and its own Celery processes,
all stopped and dropped afterwards."""
from __future__ import annotations

import shutil

import pytest

from tests.conftest import _unavailable
from tests.faults.support import FaultStack


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server", FileNotFoundError("redis-server is not on PATH"))
    return binary


@pytest.fixture
def stack(pg_url, redis_binary, tmp_path):
    """A migrated database, a redis-server of its own and a Celery client; the test
    starts workers and beat through it, and everything is stopped afterwards."""
    faults = FaultStack(pg_url, tmp_path)
    try:
        yield faults
    finally:
        faults.close()
