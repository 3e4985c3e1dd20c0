"""The operations API for operators with many runs and for wall displays (issue 21):
the run list paged and filtered, who paused or cancelled a run, the rate and ETA
the CLI shows at the same instant, the read-only token (ADMIN_READ_TOKEN), and the
status page's server side (API off, proxy mode, favicon). The page's wording is
tested in Node by tests/test_status_page_wording.py.

On SQLite and PostgreSQL, with the fixtures of tests/test_backfills_api.py (one
database of each kind per module; every test makes its own runs).
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from backend.backfill.clock import use_clock, utcnow
from backend.config import Config, ConfigError
from backend.web.backfills import view
from tests.backfills_for_tests import FakeClock
from tests.test_backfills_api import (  # noqa: F401  (fixtures)
    AUTH, SECRET, app, client, db_url, error_of, make_app, new_run, running_run, service, status_of,
)

READ_SECRET = "read-only-token-for-wall-displays-0123"
READ = {"Authorization": f"Bearer {READ_SECRET}"}


# --- one rate, one ETA ------------------------------------------------------------------

def test_the_api_and_the_cli_show_the_same_rate_and_eta_at_the_same_instant(client, service):
    """Both come from backend.backfill.progress.pace over the same 60 s of batches:
    read at the same instant (a tick boundary, where the API measures), they agree."""
    clock = FakeClock(view.tick(utcnow()))
    with use_clock(clock):
        run_id = running_run(service, batches=3)  # 3 batches of 10 rows finished at clock.now
        clock.now += timedelta(seconds=2 * view.RATE_TICK_SECONDS)

        api = client.get(f"/api/backfills/{run_id}", headers=AUTH).json
        cli = service.snapshot(run_id)  # what --batched and --status print

    assert api["rows_per_second"] is not None and api["eta_seconds"] is not None
    assert (api["rows_per_second"], api["eta_seconds"]) == (cli.rows_per_second, cli.eta_seconds)
    assert api["rows_per_second"] == round(30 / (2 * view.RATE_TICK_SECONDS), 1)
    assert (api["rows_scanned"], api["rows_total"], api["percent"]) == (cli.rows_scanned, cli.rows_total, cli.percent)
    assert (api["windows_remaining"], api["estimated_finish_at"]) == (cli.windows_remaining, cli.estimated_finish_at)


# --- many runs: pages and filters ---------------------------------------------------------

def walk(client, url: str, headers=AUTH) -> tuple[list[int], int]:
    """Every run id the pages from `url` list, following `next`; and the page count."""
    ids, pages = [], 0
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.json
        body = response.json
        ids += [run["id"] for run in body["items"]]
        pages += 1
        assert (body["next"] is None) == (body["next_cursor"] is None)
        url = body["next"]
    return ids, pages


def test_runs_are_paged_newest_first_and_filtered_by_name_and_status(client, service):
    slow = [new_run(service, "test_touch_slow") for _ in range(5)]
    service.cancel(slow[1], actor="test")

    ids, pages = walk(client, "/api/backfills?name=test_touch_slow&limit=2")
    assert ids == sorted(ids, reverse=True) and set(slow) <= set(ids) and len(ids) == len(set(ids))
    assert pages == -(-len(ids) // 2)
    everything, _ = walk(client, "/api/backfills?limit=200")
    listed = client.get("/api/backfills?limit=200", headers=AUTH).json["items"]
    assert everything == sorted(everything, reverse=True)
    assert [i for i in everything if i in ids] == ids  # the filter keeps the order
    assert {run["name"] for run in listed if run["id"] in ids} == {"test_touch_slow"}

    pending_slow, _ = walk(client, "/api/backfills?name=test_touch_slow&status=pending&limit=1")
    assert set(slow) - {slow[1]} <= set(pending_slow) and slow[1] not in pending_slow
    first = client.get("/api/backfills?name=test_touch_slow&status=pending&limit=1", headers=AUTH).json
    assert first["next"] == f"/api/backfills?status=pending&name=test_touch_slow&limit=1&cursor={first['next_cursor']}"
    assert first["access"] == "control"
    older = client.get(f"/api/backfills?cursor={slow[2]}&limit=200", headers=AUTH).json["items"]
    assert older and all(run["id"] < slow[2] for run in older)
    assert client.get("/api/backfills?name=no_such_backfill", headers=AUTH).json == {
        "items": [], "next_cursor": None, "next": None, "access": "control"}
    assert client.get("/api/backfills?name=bell%07", headers=AUTH).json["items"] == []  # no name has one


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=ten", "cursor=0", "cursor=-1", "cursor=x",
                                   "cursor=1000000000000000000", "name=", "name=" + "x" * 101, "name=a%00b",
                                   "status=done"])
def test_bad_list_parameters_are_json_400s(client, query):
    response = client.get(f"/api/backfills?{query}", headers=AUTH)

    assert response.status_code == 400, query
    assert error_of(response)["code"] == "invalid_request"
    assert error_of(response)["details"] == {"parameter": query.split("=")[0]}


def test_a_page_is_not_304_once_the_run_beyond_it_leaves_the_filter(client, service):
    """The page's rows stay the same, but its `next` link goes: the ETag covers it.
    (Only this test makes test_touch_str runs.)"""
    older = new_run(service, "test_touch_str")
    newest = new_run(service, "test_touch_str")
    url = f"/api/backfills?name=test_touch_str&status=pending&limit=1&cursor={newest + 1}"
    first = client.get(url, headers=AUTH)
    assert [run["id"] for run in first.json["items"]] == [newest] and first.json["next_cursor"] == str(newest)
    etag = first.headers["ETag"]
    assert client.get(url, headers={**AUTH, "If-None-Match": etag}).status_code == 304

    service.cancel(older, actor="test")  # no longer pending: nothing follows the page
    after = client.get(url, headers={**AUTH, "If-None-Match": etag})
    assert after.status_code == 200 and after.json["next"] is None and after.headers["ETag"] != etag


# --- who paused or cancelled it -------------------------------------------------------------

def test_paused_and_cancelled_runs_say_who_did_it_when_and_why(client, service):
    run_id = running_run(service, batches=1)
    assert client.get(f"/api/backfills/{run_id}", headers=AUTH).json["last_control"] is None

    paused = client.post(f"/api/backfills/{run_id}/pause", headers=AUTH, json={"reason": "black friday"}).json

    control = paused["last_control"]
    assert (control["status"], control["actor"], control["reason"]) == ("paused", "api:ops", "black friday")
    log = client.get(f"/api/backfills/{run_id}/transitions", headers=AUTH).json["items"]
    assert control["at"] == log[-1]["at"]
    listed = client.get("/api/backfills?status=paused&limit=200", headers=AUTH).json["items"]
    assert [run["last_control"] for run in listed if run["id"] == run_id] == [control]

    resumed = client.post(f"/api/backfills/{run_id}/resume", headers=AUTH).json
    assert resumed["last_control"] is None
    service.pause(run_id, actor="cli:alice")  # no reason, from the command line
    assert client.get(f"/api/backfills/{run_id}", headers=AUTH).json["last_control"]["actor"] == "cli:alice"
    cancelled = client.post(f"/api/backfills/{run_id}/cancel", headers=AUTH, json={"reason": "wrong table"}).json
    assert {k: cancelled["last_control"][k] for k in ("status", "actor", "reason")} == {
        "status": "cancelled", "actor": "api:ops", "reason": "wrong table"}


# --- the read-only token ------------------------------------------------------------------

@pytest.fixture
def read_app(db_url):
    app = make_app(db_url, ADMIN_READ_TOKEN=f"wall:{READ_SECRET}")
    yield app
    app.extensions["db_engine"].dispose()


def test_the_read_token_reads_progress_and_is_refused_every_control(read_app, service):
    client = read_app.test_client()
    run_id = running_run(service, batches=1)

    listed = client.get("/api/backfills", headers=READ)
    assert listed.status_code == 200 and listed.json["access"] == "read"
    assert client.get("/api/backfills", headers=AUTH).json["access"] == "control"
    for url in (f"/api/backfills/{run_id}", "/api/backfills/by-name/test_touch", f"/api/backfills/{run_id}/batches",
                f"/api/backfills/{run_id}/transitions", "/metrics"):
        assert client.get(url, headers=READ).status_code == 200, url
    for action in ("pause", "cancel", "resume", "retry"):
        refused = client.post(f"/api/backfills/{run_id}/{action}", headers=READ, json={})
        assert refused.status_code == 403, action
        assert error_of(refused)["code"] == "read_only_token" and "ADMIN_API_TOKEN" in error_of(refused)["message"]
    assert status_of(client, run_id) == "running"
    assert [t["actor"] for t in client.get(f"/api/backfills/{run_id}/transitions", headers=READ).json["items"]
            if t["actor"].startswith("api:")] == []
    assert client.post(f"/api/backfills/{run_id}/pause", headers=AUTH).status_code == 200  # the admin token still can
    wrong = client.get("/api/backfills", headers={"Authorization": f"Bearer {READ_SECRET}x"})
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "invalid_token"


def test_a_read_token_alone_opens_the_reading_routes_only(db_url, service):
    app = make_app(db_url, token=None, ADMIN_READ_TOKEN=READ_SECRET)
    client = app.test_client()
    try:
        run_id = running_run(service, batches=1)
        assert client.get("/api/backfills", headers=READ).json["access"] == "read"
        assert client.post(f"/api/backfills/{run_id}/pause", headers=READ).status_code == 403
        assert client.get("/api/backfills", headers=AUTH).status_code == 401
        assert 'data-api-enabled="true"' in client.get("/admin/backfills").get_data(as_text=True)
    finally:
        app.extensions["db_engine"].dispose()


@pytest.mark.parametrize("read, message", [
    ("short", "ADMIN_READ_TOKEN's token is 5 characters, at least 32 are required"),
    (f"wall:{SECRET}", "ADMIN_READ_TOKEN's token must differ from ADMIN_API_TOKEN's"),
    ("tab\there-0123456789012345678901234567", "ADMIN_READ_TOKEN must be printable ASCII"),
])
def test_a_weak_or_shared_read_token_stops_the_app_with_one_line(read, message):
    with pytest.raises(ConfigError) as error:
        Config.from_env({"ADMIN_API_TOKEN": f"ops:{SECRET}", "ADMIN_READ_TOKEN": read})
    assert message in str(error.value) and "\n" not in str(error.value)


# --- the status page's server side --------------------------------------------------------------

def test_with_the_api_off_the_page_says_so_instead_of_asking_for_a_token(db_url):
    app = make_app(db_url, token=None)
    try:
        html = app.test_client().get("/admin/backfills").get_data(as_text=True)
    finally:
        app.extensions["db_engine"].dispose()
    assert 'data-api-enabled="false"' in html
    assert '<p id="disabled" class="notice problem" role="alert">The operations API is disabled' in html
    assert html.index('id="disabled"') < html.index('id="login"')  # before the (hidden) form


def test_the_page_knows_a_proxy_adds_the_token_without_checking_it(client):
    plain = client.get("/admin/backfills").get_data(as_text=True)
    proxied = client.get("/admin/backfills", headers={"Authorization": "Bearer anything-at-all"})
    basic = client.get("/admin/backfills", headers={"Authorization": "Basic dXNlcjpwdw=="}).get_data(as_text=True)

    assert 'data-auth="token"' in plain and 'data-auth="token"' in basic
    assert proxied.status_code == 200 and 'data-auth="proxy"' in proxied.get_data(as_text=True)
    assert 'data-api-enabled="true"' in plain and 'id="disabled"' not in plain


def test_favicon_is_not_a_404_and_the_page_links_its_own_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 204 and response.data == b""
    html = client.get("/admin/backfills").get_data(as_text=True)
    assert 'rel="icon" href="/static/backfills/favicon.svg"' in html
    icon = client.get("/static/backfills/favicon.svg")
    assert icon.status_code == 200 and icon.data.startswith(b"<svg")
