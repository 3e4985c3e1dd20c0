"""The backfill operations API: watch and steer batched backfills over HTTP.

    GET  /api/backfills                      runs, newest first (?status=&name=&limit=&cursor=)
    GET  /api/backfills/<id>                 one run's progress: the polling endpoint
    GET  /api/backfills/by-name/<name>       the latest run of a backfill
    GET  /api/backfills/<id>/batches         its batches (?status=&limit=&cursor=)
    GET  /api/backfills/<id>/transitions     its status changes: who, when, why
    POST /api/backfills/<id>/pause|resume|cancel|retry
    GET  /api/openapi.json                   the OpenAPI 3.1 document (public)

Authentication (backend.web.backfills.auth). Every route needs `Authorization:
Bearer <token>`: ADMIN_API_TOKEN's for everything, or the read-only ADMIN_READ_TOKEN's
for the GET routes (a control sent with it is 403). Without either token the routes
answer 503; a missing or wrong token is 401. The run list says which kind of token
read it (`access`: "control" or "read"), so the status page hides the buttons a
reader cannot use.

Polling. GET responses carry a strong ETag and `Cache-Control: no-store`; send the
ETag back in If-None-Match and an unchanged run answers 304 after one query by
primary key (see backend.web.backfills.view).

Controls take an optional JSON body: pause and cancel accept {"reason": "..."} (at
most 500 characters) for the transition log; resume and retry take none (the
engine records its own reason). With CELERY_BROKER_URL set, resume and retry hand a
Celery run's batches to the workers at once; otherwise the beat's recovery (Celery)
or the next `run_migrations.py --batched` (in-process) picks them up.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from backend.backfill import controls
from backend.backfill.dispatcher import SendBatches
from backend.backfill.policy import RunPolicy
from backend.backfill.runs import RunNotFound
from backend.backfill.service import BackfillService
from backend.backfill.model import BatchStatus, IllegalTransition, RunStatus
from backend.shop.validation import clean_text
from backend.web.backfills import view as view
from backend.web.backfills.auth import authenticate
from backend.web.backfills.openapi import openapi_document
from backend.web.database import get_engine
from backend.web.errors import ApiError, error_response

bp = Blueprint("backfills_api", __name__, url_prefix="/api/backfills")
openapi_bp = Blueprint("openapi", __name__, url_prefix="/api")

BIGINT_MAX = 2**63 - 1
RUN_ID = f"<int(min=1, max={BIGINT_MAX}):run_id>"  # beyond 64 bits: no route, 404
SEQ_MAX = 2**31 - 1
RUN_CURSOR_MAX = 10**18 - 1  # 18 digits, as the OpenAPI document's pattern says
_DIGITS = re.compile(r"[0-9]{1,19}")


bp.before_request(authenticate)  # the same check guards GET /metrics (backend.metrics.web)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(RunNotFound)
def _run_not_found(exc: RunNotFound):
    return error_response(404, "run_not_found", str(exc))


@bp.errorhandler(IllegalTransition)
def _illegal_transition(exc: IllegalTransition):
    return error_response(409, "illegal_transition", str(exc),
                          {"status": exc.current, "actions": controls.possible(exc.current)})


# --- helpers ----------------------------------------------------------------------------

def _invalid(message: str, **details: Any) -> ApiError:
    return ApiError(400, "invalid_request", message, details or None)


def _choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise _invalid(f"query parameter {name!r} must be one of {', '.join(choices)}", parameter=name)
    return raw


def _int_arg(name: str, *, minimum: int, maximum: int, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise _invalid(f"query parameter {name!r} must be an integer between {minimum} and {maximum}",
                       parameter=name)
    return int(raw)


def _json(body: Any, etag: str | None = None, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    if etag:
        response.headers["ETag"] = etag
    return response


def _not_modified(etag: str) -> Response | None:
    """304 when If-None-Match names `etag` (weak comparison, as RFC 9110 asks)."""
    if request.if_none_match.contains_weak(etag.strip('"')):
        response = Response(status=304)
        response.headers["ETag"] = etag
        return response
    return None


def _service() -> BackfillService:
    """The engine's BackfillService on the app's database (its catalog and settings),
    created at first use."""
    service = current_app.extensions.get("backfill_service")
    if service is None:
        config = current_app.config["SHOP"]
        service = BackfillService.from_config(config, get_engine(), current_app.extensions.get("backfill_notifier"))
        current_app.extensions["backfill_service"] = service
    return service


def _schedule_for(name: str):
    """The backfill's maintenance windows (None for a backfill the catalog lacks)."""
    service = _service()
    if name not in service.catalog:
        return None
    return RunPolicy.of(service.catalog.get(name), service.settings).schedule


def _dispatch() -> SendBatches | None:
    """The dispatcher the app was created with (wsgi.py hands in the Celery one when a
    broker is configured). A failure to reach it does not undo the control (it is
    committed): the beat's recovery re-sends the batches."""
    dispatcher = current_app.extensions.get("backfill_dispatcher")
    if dispatcher is None:
        return None
    app = current_app._get_current_object()

    def send(batch_ids):
        try:
            dispatcher.send(batch_ids)
        except Exception:
            app.logger.exception("could not dispatch batches; the recovery beat will re-send them")

    return send


def _control_reason(action: str) -> str | None:
    raw = request.get_data()
    if not raw.strip():
        return None
    if not request.is_json:  # as the shop API answers it
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict):
        raise _invalid("the body must be a JSON object")
    allowed = {"reason"} if controls.get(action).takes_reason else set()
    unknown = sorted(set(payload) - allowed)
    if unknown:
        hint = "" if allowed else f"; {action} takes no reason (the engine records its own)"
        raise _invalid(f"unknown field(s): {', '.join(unknown)}{hint}",
                       fields={name: "unknown field" for name in unknown})
    reason = payload.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or clean_text(reason) is None:
        message = "reason must be a string of valid text"
        raise _invalid(message, fields={"reason": message})
    if len(reason) > controls.REASON_MAX_LENGTH:  # as sent, as the OpenAPI document says
        message = f"reason must be at most {controls.REASON_MAX_LENGTH} characters"
        raise _invalid(message, fields={"reason": message})
    return reason.strip() or None


# --- routes -----------------------------------------------------------------------------

def _name_arg() -> str | None:
    """?name=: a backfill's name, 1 to 100 characters without NUL (as documented)."""
    raw = request.args.get("name")
    if raw is not None and (not 1 <= len(raw) <= 100 or "\x00" in raw):
        raise _invalid("query parameter 'name' must be 1 to 100 characters, without NUL", parameter="name")
    return raw


@bp.get("")
def list_runs():
    status = _choice_arg("status", RunStatus.ALL)
    name = _name_arg()
    limit = _int_arg("limit", minimum=1, maximum=view.RUN_PAGE_MAX, default=view.RUN_PAGE_DEFAULT)
    before = _int_arg("cursor", minimum=1, maximum=RUN_CURSOR_MAX, default=None)
    as_of = view.tick()
    with get_engine().connect() as connection:
        if name is not None and clean_text(name) is None:  # cannot be a name: no run has it
            rows, more = [], False
        else:
            rows, more = view.list_runs(connection, status, name, limit=limit, before_id=before)
        next_cursor = str(rows[-1].id) if more else None
        next_link = url_for(".list_runs", status=status, name=name, limit=limit, cursor=next_cursor) \
            if next_cursor else None
        stats = view.batch_stats(connection, rows, as_of)
        etag = view.etag_for(rows, as_of, stats, extra=f"{g.backfills_access}|{next_link}")
        if (unchanged := _not_modified(etag)) is not None:
            return unchanged
        items = view.runs_view(connection, rows, as_of, _schedule_for, stats, _service().settings.stall_seconds)
    return _json({"items": items, "next_cursor": next_cursor, "next": next_link, "access": g.backfills_access},
                 etag)


def _one_run(load, *, conditional: bool = True) -> Response:
    as_of = view.tick()
    with get_engine().connect() as connection:
        run = load(connection)
        stats = view.batch_stats(connection, [run], as_of)
        etag = view.etag_for([run], as_of, stats)
        if conditional and (unchanged := _not_modified(etag)) is not None:
            return unchanged
        body = view.runs_view(connection, [run], as_of, _schedule_for, stats, _service().settings.stall_seconds)[0]
    return _json(body, etag)


@bp.get(f"/{RUN_ID}")
def get_run(run_id: int):
    return _one_run(lambda connection: view.get_run(connection, run_id))


@bp.get("/by-name/<name>")
def latest_run(name: str):
    if len(name) > 100 or clean_text(name) is None:  # cannot be a name: never reaches the database
        raise RunNotFound(name)
    return _one_run(lambda connection: view.latest_run(connection, name))


@bp.get(f"/{RUN_ID}/batches")
def list_batches(run_id: int):
    status = _choice_arg("status", BatchStatus.ALL)
    limit = _int_arg("limit", minimum=1, maximum=view.BATCH_PAGE_MAX, default=view.BATCH_PAGE_DEFAULT)
    after = _int_arg("cursor", minimum=0, maximum=SEQ_MAX, default=None)
    with get_engine().connect() as connection:
        view.get_run(connection, run_id)
        page = view.batches_page(connection, run_id, status=status, limit=limit, after_seq=after)
    return _json(page)


@bp.get(f"/{RUN_ID}/transitions")
def list_transitions(run_id: int):
    with get_engine().connect() as connection:
        items = view.transitions_view(connection, run_id)
    return _json({"items": items})


def _control(run_id: int, action: str):
    reason = _control_reason(action)
    controls.get(action).apply(_service(), run_id, actor=g.backfills_actor, reason=reason, dispatch=_dispatch())
    return _one_run(lambda connection: view.get_run(connection, run_id), conditional=False)


for _action in controls.NAMES:
    bp.add_url_rule(f"/{RUN_ID}/{_action}", endpoint=f"control_{_action}", view_func=_control,
                    methods=["POST"], defaults={"action": _action})


@openapi_bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
