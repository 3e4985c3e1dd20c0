"""backend/backfill/controls.py: the one list of run controls, and everything built from it."""
from __future__ import annotations

import run_migrations
from backend.backfill import controls
from backend.backfill.model import ALLOWED_TRANSITIONS, RunStatus
from backend.web.backfills.openapi import openapi_document
from backend.web.backfills.page import BUTTONS


def test_each_control_applies_where_the_transition_table_allows_its_move():
    for control in controls.CONTROLS:
        assert control.applies_to, control.name
        for status in control.applies_to:
            assert control.target in ALLOWED_TRANSITIONS[status], (control.name, status)
    # resume and retry are one particular move to running each (the table also lets a
    # pending run start and a waiting one continue): a paused run, a failed run.
    assert controls.get("resume").applies_to == (RunStatus.PAUSED,)
    assert controls.get("retry").applies_to == (RunStatus.FAILED,)
    assert controls.get("pause").applies_to == (RunStatus.RUNNING, RunStatus.WAITING)


def test_possible_controls_per_status_in_the_order_of_the_list():
    assert controls.possible(RunStatus.RUNNING) == ["pause", "cancel"]
    assert controls.possible(RunStatus.PAUSED) == ["resume", "cancel"]
    assert controls.possible(RunStatus.FAILED) == ["cancel", "retry"]
    assert controls.possible(RunStatus.PENDING) == ["cancel"]
    assert controls.possible(RunStatus.COMPLETED) == controls.possible(RunStatus.CANCELLED) == []


def test_an_unknown_control_names_the_known_ones():
    try:
        controls.get("restart")
    except ValueError as exc:
        assert str(exc) == "unknown control 'restart' (known: pause, resume, cancel, retry)"
    else:
        raise AssertionError("no error")


def test_the_cli_the_openapi_document_and_the_page_offer_exactly_the_controls():
    options = {parameter.name for parameter in run_migrations.main.params}
    assert set(controls.NAMES) <= options
    document = openapi_document()
    posted = {path.rsplit("/", 1)[1] for path, item in document["paths"].items() if "post" in item}
    assert posted == set(controls.NAMES)
    assert document["components"]["schemas"]["Action"]["enum"] == list(controls.NAMES)
    for control in controls.CONTROLS:
        body = document["paths"][f"/api/backfills/{{run_id}}/{control.name}"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]["$ref"]
        assert schema.endswith("ReasonBody" if control.takes_reason else "EmptyBody"), control.name
    assert sorted(button.name for button in BUTTONS) == sorted(controls.NAMES)
    assert BUTTONS[-1].confirm  # the final one, asked to confirm, comes last
