"""The OpenAPI 3.1 document of the backfill operations API, served at
GET /api/openapi.json. Kept next to the routes (backend/web/backfills/api.py);
tests/test_backfills_api.py checks that both list the same operations, validates
the document and runs schemathesis against the app with it. One document, so one
module (367 lines, most of them the schemas): split, it would be read in pieces."""
from __future__ import annotations

import copy
from typing import Any

from backend.backfill import controls
from backend.backfill.stall import STALL_SECONDS
from backend.backfill.model import BatchStatus, RunStatus

BIGINT_MAX = 2**63 - 1
NO_NUL = "^[^\\u0000]*$"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    schema["type"] = [schema["type"], "null"]
    return schema


_INT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}


def _object(properties: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": list(properties), "properties": properties,
                              "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["run_not_found"]},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    },
    "RunStatus": {"type": "string", "enum": list(RunStatus.ALL)},
    "BatchStatus": {"type": "string", "enum": list(BatchStatus.ALL)},
    "Action": {"type": "string", "enum": list(controls.NAMES)},
    "Run": _object({
        "id": {"type": "integer", "format": "int64", "minimum": 1},
        "name": {"type": "string", "description": "the backfill's name in the catalog"},
        "status": {"$ref": "#/components/schemas/RunStatus"},
        "executor": _nullable({"type": "string", "description": "inprocess or celery, once started"}),
        "scheduled_by": _nullable({"type": "string", "description": "the Alembic revision that scheduled it"}),
        "rows_done": {**_INT, "description": "rows the backfill changed"},
        "rows_scanned": {**_INT, "description": "keys walked so far (what percent and ETA count)"},
        "rows_total": _nullable({**_INT, "description": "keys in the run's bounds, fixed at start"}),
        "rows_total_exact": {"type": "boolean", "description": "false when rows_total is an estimate"},
        "percent": _nullable({"type": "number", "minimum": 0, "maximum": 100}),
        "rows_per_second": _nullable({"type": "number", "minimum": 0,
                                      "description": "keys per second over the batches finished in the "
                                                     "last 60 s before measured_at (running runs only; "
                                                     "null while the run is stalled)"}),
        "eta_seconds": _nullable({"type": "number", "minimum": 0,
                                  "description": "from measured_at (null while the run is stalled)"}),
        "eta_at": _nullable(_TIME),
        "windows_remaining": _nullable({**_INT, "description": "maintenance windows the rest needs at the "
                                                               "current rate, counting an open one (null: "
                                                               "the backfill may run at any time)"}),
        "estimated_finish_at": _nullable({**_TIME, "description": "when the rest should be done, spread over "
                                                                   "the windows (null: no windows, or beyond "
                                                                   "two years)"}),
        "measured_at": {**_TIME, "description": "when the rate and ETA were measured (a 5 s clock tick); "
                                        "for a run that is no longer active, its last update"},
        "batch_size": {**_INT, "description": "the current batch size"},
        "max_parallel": _INT,
        "batches_done": _INT,
        "batches_failed": _INT,
        "batches_in_flight": {**_INT, "description": "pending or running batches (0 once the run is finished)"},
        "batches_running": {**_INT, "description": "batches a worker is executing now"},
        "last_error": _nullable(_TEXT),
        "wait_reason": _nullable({"type": "string", "description": "why a waiting run waits "
                                                                    "(maintenance window, health check)"}),
        "next_window_at": _nullable({**_TIME, "description": "when a waiting run tries again"}),
        "created_at": _TIME,
        "started_at": _nullable(_TIME),
        "updated_at": _TIME,
        "heartbeat_at": _nullable(_TIME),
        "finished_at": _nullable(_TIME),
        "stalled": _nullable(_object({
            "since": {**_TIME, "description": "the last sign of work: a batch claimed or finished, or the "
                                              "run's last change (start, resume)"},
            "seconds": {**_INT, "description": "how long ago that was, at measured_at"},
            "batches_waiting": {**_INT, "description": "batches waiting to be taken (0: none carved yet)"},
            "reason": {"type": "string", "description": "what is wrong and the likely cause",
                       "examples": ["no worker has taken a batch in 45 s although 3 batches are pending: is a "
                                    "worker (`celery -A worker worker`) running, and the broker reachable?"]},
        }, f"A running run nobody works on: no batch claimed or finished for BACKFILL_STALL_SECONDS ({STALL_SECONDS:g} s "
           "by default) although batches wait "
           "(or none is carved yet) and no live worker holds one; the same rule as `run_migrations.py "
           "--batched` (backend/backfill/stall.py). Null when the run is not stalled.")),
        "last_control": _nullable(_object({
            "status": {"type": "string", "enum": ["paused", "cancelled"],
                       "description": "the status it put the run in (the run's status)"},
            "actor": {"type": "string", "examples": ["api:ops", "cli:alice"]},
            "reason": _nullable({"type": "string", "description": "as given with the control"}),
            "at": _TIME,
        }, "Who paused or cancelled the run, when and why: the transition into its status (from the "
           "transition log). Null unless the run is paused or cancelled.")),
        "actions": {"type": "array", "uniqueItems": True, "items": {"$ref": "#/components/schemas/Action"},
                    "description": "the controls that apply to the run's status"},
        "job": _nullable(_object({
            "kind": {"type": "string", "enum": ["index", "validate"]},
            "table": _TEXT,
            "target": {"type": "string", "description": "the index built, or the constraint validated"},
            "statement": {"type": "string", "description": "what the job runs, outside any transaction"},
            "progress": _nullable(_object({
                "phase": _TEXT,
                **{column: _nullable(_INT) for column in ("blocks_done", "blocks_total", "tuples_done",
                                                          "tuples_total", "lockers_done", "lockers_total",
                                                          "partitions_done", "partitions_total")},
            }, "The build's row of pg_stat_progress_create_index while it runs; null otherwise (and for a "
               "validation, which PostgreSQL does not report)")),
        }, "A schema job's run (an index build or a constraint validation a revision scheduled, "
           "docs/index-jobs.md): what it runs and how far its build is. Null for a backfill's run.")),
    }, "A run of a backfill and its progress."),
    "RunList": _object({
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
        "next_cursor": _nullable({"type": "string", "pattern": "^[1-9][0-9]{0,18}$",
                                  "description": "pass as ?cursor= for the next (older) page; null on the last"}),
        "next": _nullable({"type": "string", "description": "the next page's URL (the same filters and limit)",
                           "examples": ["/api/backfills?status=completed&limit=50&cursor=120"]}),
        "access": {"type": "string", "enum": ["control", "read"],
                   "description": "what the token sent may do: control (ADMIN_API_TOKEN) or read only "
                                  "(ADMIN_READ_TOKEN)"},
    }, "A page of runs, newest first."),
    "Batch": _object({
        "id": {"type": "integer", "format": "int64", "minimum": 1},
        "seq": {"type": "integer", "minimum": 1},
        "status": {"$ref": "#/components/schemas/BatchStatus"},
        "key_after": _nullable({"type": "string", "description": "the range is key_after < key <= key_end"}),
        "key_end": _TEXT,
        "rows_in_range": _INT,
        "rows_affected": _nullable(_INT),
        "batch_size": _INT,
        "attempts": _INT,
        "duration_ms": _nullable(_INT),
        "error": _nullable(_TEXT),
        "claimed_by": _nullable(_TEXT),
        "dispatched_at": _nullable(_TIME),
        "started_at": _nullable(_TIME),
        "finished_at": _nullable(_TIME),
        "lease_expires_at": _nullable(_TIME),
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/BatchError"},
                   "description": "every failed attempt, oldest first (`error` is the last one's)"},
    }),
    "BatchError": _object({
        "attempt": {"type": "integer", "minimum": 1},
        "error_class": {"type": "string", "examples": ["psycopg2.errors.QueryCanceled", "WorkerLost"]},
        "message": _TEXT,
        "at": _TIME,
    }, "One failed attempt of a batch: an error, a statement timeout that split it, a worker lost."),
    "BatchPage": _object({
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Batch"}},
        "next_cursor": _nullable({"type": "string", "description": "pass as ?cursor= for the next page"}),
    }),
    "Transition": _object({
        "id": {"type": "integer", "minimum": 1},
        "from_status": _nullable({"type": "string"}),
        "to_status": {"$ref": "#/components/schemas/RunStatus"},
        "actor": {"type": "string", "examples": ["api:admin", "engine", "executor celery"]},
        "reason": _nullable(_TEXT),
        "at": _TIME,
    }),
    "TransitionList": _object({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Transition"}}}),
    "ReasonBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "reason": {"type": ["string", "null"], "maxLength": controls.REASON_MAX_LENGTH, "pattern": NO_NUL,
                       "description": "kept in the transition log"},
        },
    },
    "EmptyBody": {"type": "object", "additionalProperties": False, "maxProperties": 0},
}

_HEADERS = {
    "ETag": {"description": "strong validator of the representation; send it back in If-None-Match",
             "schema": {"type": "string"}},
    "CacheControl": {"description": "always no-store", "schema": {"type": "string", "const": "no-store"}},
    "WWWAuthenticate": {"description": "the Bearer challenge", "schema": {"type": "string"}},
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


_RESPONSES = {
    "BadRequest": _error("malformed input: a bad query parameter or body"),
    "Unauthorized": _error("missing or wrong token",
                           {"WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"}}),
    "ReadOnly": _error("a control sent with the read-only token (ADMIN_READ_TOKEN)"),
    "NotFound": _error("no such run"),
    "Conflict": _error("the control does not apply to the run's status (illegal transition)"),
    "UnsupportedMediaType": _error("a body not declared as JSON (Content-Type: application/json)"),
    "Disabled": _error("the admin API is disabled: ADMIN_API_TOKEN is not set"),
    "NotModified": {"description": "the representation has not changed since the ETag given in If-None-Match",
                    "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}},
}

_PARAMETERS = {
    "RunId": {"name": "run_id", "in": "path", "required": True, "example": 1,
              "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX}},
    "IfNoneMatch": {"name": "If-None-Match", "in": "header", "required": False,
                    "description": "the ETag of the representation the client has", "schema": {"type": "string"}},
}


def _ok(schema: str, description: str, *, etag: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {"Cache-Control": {"$ref": "#/components/headers/CacheControl"}}
    if etag:
        headers["ETag"] = {"$ref": "#/components/headers/ETag"}
    return {"description": description, "headers": headers,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _common(*codes: str) -> dict[str, Any]:
    names = {"304": "NotModified", "400": "BadRequest", "401": "Unauthorized", "403": "ReadOnly", "404": "NotFound",
             "409": "Conflict", "415": "UnsupportedMediaType", "503": "Disabled"}
    return {code: _ref("responses", names[code]) for code in codes}


def _control_operation(control: controls.Control) -> dict[str, Any]:
    takes_reason = control.takes_reason
    return {
        "operationId": f"{control.name}Run",
        "summary": control.summary,
        "tags": ["controls"],
        "parameters": [_ref("parameters", "RunId")],
        "requestBody": {
            "required": False,
            "description": "optional; " + ("a reason for the transition log" if takes_reason
                                           else "takes no field (the engine records its own reason)"),
            "content": {"application/json": {"schema": _ref("schemas", "ReasonBody" if takes_reason
                                                              else "EmptyBody")}},
        },
        "responses": {"200": _ok("Run", "the run after the control", etag=True),
                      **_common("400", "401", "403", "404", "409", "415", "503")},
    }


def _build() -> dict[str, Any]:
    run_id = _ref("parameters", "RunId")
    if_none_match = _ref("parameters", "IfNoneMatch")
    paths: dict[str, Any] = {
        "/api/backfills": {"get": {
            "operationId": "listRuns",
            "summary": "The runs with their progress, newest first, a page at a time",
            "tags": ["runs"],
            "parameters": [
                {"name": "status", "in": "query", "required": False, "schema": _ref("schemas", "RunStatus")},
                {"name": "name", "in": "query", "required": False, "description": "the backfill's name (exact)",
                 "example": "orders_total_cents",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NO_NUL}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                {"name": "cursor", "in": "query", "required": False,
                 "description": "next_cursor of the previous page: runs older than that id",
                 "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}},
                if_none_match,
            ],
            "responses": {"200": _ok("RunList", "the runs", etag=True), **_common("304", "400", "401", "503")},
        }},
        "/api/backfills/{run_id}": {"get": {
            "operationId": "getRun",
            "summary": "One run's progress: the polling endpoint",
            "tags": ["runs"],
            "parameters": [run_id, if_none_match],
            "responses": {"200": _ok("Run", "the run", etag=True), **_common("304", "401", "404", "503")},
        }},
        "/api/backfills/by-name/{name}": {"get": {
            "operationId": "getLatestRunByName",
            "summary": "The latest run of a backfill",
            "tags": ["runs"],
            "parameters": [
                {"name": "name", "in": "path", "required": True, "example": "orders_total_cents",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NO_NUL}},
                if_none_match,
            ],
            "responses": {"200": _ok("Run", "the latest run", etag=True), **_common("304", "401", "404", "503")},
        }},
        "/api/backfills/{run_id}/batches": {"get": {
            "operationId": "listBatches",
            "summary": "The run's batches in order, with their errors",
            "tags": ["runs"],
            "parameters": [
                run_id,
                {"name": "status", "in": "query", "required": False, "schema": _ref("schemas", "BatchStatus")},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                {"name": "cursor", "in": "query", "required": False,
                 "description": "next_cursor of the previous page",
                 "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"}},
            ],
            "responses": {"200": _ok("BatchPage", "a page of batches", etag=False),
                          **_common("400", "401", "404", "503")},
        }},
        "/api/backfills/{run_id}/transitions": {"get": {
            "operationId": "listTransitions",
            "summary": "Every status change of the run: who or what, when and why",
            "tags": ["runs"],
            "parameters": [run_id],
            "responses": {"200": _ok("TransitionList", "the transition log, oldest first", etag=False),
                          **_common("401", "404", "503")},
        }},
    }
    for control in controls.CONTROLS:
        paths[f"/api/backfills/{{run_id}}/{control.name}"] = {"post": _control_operation(control)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Backfill operations API",
            "version": "1.0.0",
            "description": "Watch and steer the shop's batched backfills. Every operation needs "
                           "`Authorization: Bearer <ADMIN_API_TOKEN>`; the GET operations also accept the "
                           "read-only ADMIN_READ_TOKEN (a control sent with it is 403). Without a configured "
                           "token the API answers 503. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        },
        "security": [{"adminToken": []}],
        "tags": [{"name": "runs", "description": "progress, batches, transition log"},
                 {"name": "controls", "description": ", ".join(controls.NAMES)}],
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer",
                                               "description": "the token part of ADMIN_API_TOKEN, or of ADMIN_READ_TOKEN "
                                                              "for the GET operations"}},
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
        },
    }


_DOCUMENT = _build()


def openapi_document() -> dict[str, Any]:
    """A fresh copy (callers may change it)."""
    return copy.deepcopy(_DOCUMENT)
