"""`python -m bench --smoke`: every method of the benchmark, on a few thousand rows of
a fresh PostgreSQL database, with the concurrent load and real Celery workers (our
own redis-server), gives the right totals and writes its reports. Times are not
checked: they are the benchmark's business, not a test's."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.conftest import IN_CI, POSTGRES_ADMIN_URL
from tests.processes import ROOT, subprocess_env

METHODS = ["update", "orm", "offset", "inprocess", "celery1", "celery2"]


@pytest.fixture
def redis_server_binary(redis_available) -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)


def _database_exists(name: str) -> bool:
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                                      {"name": name}).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.timeout(150)
def test_smoke_run_is_correct_for_every_method_and_writes_the_reports(postgres_available, redis_server_binary,
                                                                      tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output-dir", str(tmp_path),
         "--database-url", POSTGRES_ADMIN_URL],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=140,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    reports = {path.suffix: path for path in tmp_path.iterdir()}
    assert set(reports) == {".md", ".json", ".png"}, sorted(tmp_path.iterdir())
    assert all(path.stem.endswith("-smoke") for path in reports.values())
    assert reports[".png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    results = json.loads(reports[".json"].read_text())
    assert results["config"]["smoke"] is True
    assert [m["method"] for m in results["methods"]] == METHODS
    for method in results["methods"]:
        check = method["check"]
        assert check["correct"], (method["method"], check)
        assert check["checked"] == results["dataset"]["orders"] and check["wrong"] == 0 and check["still_null"] == 0
        assert method["wall_s"] > 0 and method["peak_rss_kb"] > 0
        assert method["txn"]["count"] >= 1
        assert method["load"]["count"] >= 0
    ours = {m["method"]: m for m in results["methods"] if m["method"] in ("inprocess", "celery1", "celery2")}
    for method in ours.values():
        assert method["run"]["status"] == "completed" and method["run"]["rows_done"] == results["dataset"]["orders"]
        assert method["txn"]["count"] == method["run"]["batches_done"] > 1
    assert {t["status"] for t in results["targets"]} <= {"met", "missed", "not measured"}

    table = reports[".md"].read_text()
    assert table in done.stdout
    for label in ("single UPDATE", "ORM loop", "LIMIT/OFFSET", "in-process", "Celery 1 worker", "Celery 2 workers"):
        assert label in table
    assert not _database_exists(results["dataset"]["database"])  # the scratch database was dropped
