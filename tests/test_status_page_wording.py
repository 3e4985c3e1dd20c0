"""The status page's wording (backend/web/static/backfills/format.js) run in Node on
the API's own JSON for runs in each state (issue 21): a pending run's bar does not
move, paused and cancelled runs say who did it and why, a paused run's batches are
queued (not "in flight"), a completed run says when it finished, how long it took
and its average rate, and rates have no decimals.

On SQLite and PostgreSQL, with the fixtures of tests/test_backfills_api.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta

import pytest

from backend.backfill.clock import use_clock, utcnow
from backend.web.backfills import view
from tests.backfills_for_tests import FakeClock
from tests.conftest import IN_CI
from tests.test_backfills_api import (  # noqa: F401  (fixtures)
    AUTH, ROWS, app, client, db_url, new_run, running_run, service, view_static,
)

FUNCTIONS = ("rateText", "etaText", "batchesText", "controlText", "finishedText", "barState")


def wording(run: dict, timezone: str = "UTC") -> dict:
    """Each of FUNCTIONS of format.js applied to `run`, in Node (in `timezone`)."""
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is not installed; CI requires it for the status page's wording")
        pytest.skip("node is not installed")
    script = ("const f = require(process.argv[1]); const run = JSON.parse(process.argv[2]); const out = {};"
              f"for (const name of {json.dumps(FUNCTIONS)}) {{ out[name] = f[name](run); }}"
              "console.log(JSON.stringify(out))")
    out = subprocess.run([node, "-e", script, str(view_static("format.js")), json.dumps(run)], capture_output=True,
                         text=True, check=True, env={"TZ": timezone, "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def run_json(client, run_id: int) -> dict:
    return client.get(f"/api/backfills/{run_id}", headers=AUTH).json


def test_a_pending_run_has_a_still_empty_bar_and_no_rate(client, service):
    run = run_json(client, new_run(service))
    assert run["status"] == "pending" and run["percent"] is None

    shown = wording(run)

    assert shown["barState"] == {"value": 0, "indeterminate": False}
    assert (shown["rateText"], shown["etaText"], shown["controlText"], shown["finishedText"]) == ("—", "—", "", "")


def test_a_paused_run_says_who_and_why_and_counts_its_batches_queued(client, service):
    run_id = running_run(service, batches=2)
    client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": "black friday"})
    run = run_json(client, run_id)
    assert run["batches_in_flight"] == 2 and run["batches_running"] == 0

    shown = wording(run)

    assert re.fullmatch(r"Paused by api:ops at .+: black friday\.", shown["controlText"]), shown["controlText"]
    assert shown["batchesText"] == "2 done · 0 failed · 2 batches queued"
    assert "in flight" not in shown["batchesText"]
    assert shown["barState"] == {"value": 20.0, "indeterminate": False}
    assert shown["rateText"] == "—"


def test_a_run_still_finishing_a_batch_while_paused_says_so(client, service):
    run = run_json(client, running_run(service, batches=1)) | {"status": "waiting", "batches_in_flight": 3,
                                                                  "batches_running": 1}
    assert wording(run)["batchesText"] == "1 done · 0 failed · 2 batches queued · 1 finishing"
    running = run | {"status": "running"}
    assert wording(running)["batchesText"] == "1 done · 0 failed · 3 in flight (1 running)"


def test_a_cancelled_run_without_a_reason_says_who(client, service):
    run_id = running_run(service, batches=1)
    client.post(f"/api/backfills/{run_id}/cancel", headers=AUTH)
    run = run_json(client, run_id)

    shown = wording(run)

    assert re.fullmatch(r"Cancelled by api:ops at .+: no reason given\.", shown["controlText"])
    assert shown["batchesText"] == "1 done · 0 failed"
    assert re.fullmatch(r".+ · took \d+ s", shown["finishedText"]), shown["finishedText"]  # no average: not done


def test_a_completed_run_says_when_how_long_and_its_average_rate(client, service):
    clock = FakeClock(view.tick(utcnow()))
    with use_clock(clock):
        run_id = new_run(service)
        service.start(run_id, executor="inprocess")
        while batch_ids := service.advance(run_id):
            for batch_id in batch_ids:
                clock.now += timedelta(seconds=4)
                assert service.execute(batch_id).kind == "succeeded"
        service.advance(run_id)
    run = run_json(client, run_id)
    assert run["status"] == "completed" and run["rows_scanned"] == ROWS

    shown = wording(run)

    took = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    assert took == 40  # 10 batches of 4 s
    finished = datetime.fromisoformat(run["finished_at"]).strftime(":%M:%S")  # in 12 or 24 h, as the locale says
    assert shown["finishedText"].endswith(" · took 40 s · 3 rows/s on average"), shown["finishedText"]  # 100 / 40
    assert finished in shown["finishedText"].split(" · ")[0]
    assert shown["etaText"] == "Done" and shown["barState"] == {"value": 100, "indeterminate": False}


def test_a_completed_run_with_nothing_to_scan_claims_no_average(client, service):
    run = run_json(client, running_run(service, batches=1)) | {
        "status": "completed", "rows_scanned": 0, "started_at": "2026-12-01T10:00:00Z",
        "finished_at": "2026-12-01T10:00:02Z"}
    assert wording(run)["finishedText"].endswith(" · took 2 s")


@pytest.mark.parametrize("rate, text", [(43079.4, "43,079 rows/s"), (19217.1, "19,217 rows/s"), (2.5, "3 rows/s"),
                                        (0.2, "under 1 row/s"), (None, "—")])
def test_rates_are_shown_without_decimals(rate, text):
    run = {"status": "running", "stalled": None, "rows_per_second": rate}
    assert wording(run | {"eta_seconds": None, "windows_remaining": None, "batches_done": 0, "batches_failed": 0,
                          "batches_in_flight": 0, "batches_running": 0, "last_control": None,
                          "finished_at": None, "started_at": None, "percent": None})["rateText"] == text


def test_only_a_running_run_of_unknown_total_has_a_moving_bar():
    base = {"percent": None, "stalled": None}
    assert wording(base | _blank("running"))["barState"] == {"value": 0, "indeterminate": True}
    for status in ("pending", "paused", "waiting", "cancelled", "failed"):
        assert wording(base | _blank(status))["barState"] == {"value": 0, "indeterminate": False}, status


def _blank(status: str) -> dict:
    return {"status": status, "rows_per_second": None, "eta_seconds": None, "windows_remaining": None,
            "batches_done": 0, "batches_failed": 0, "batches_in_flight": 0, "batches_running": 0,
            "last_control": None, "finished_at": None, "started_at": None}
