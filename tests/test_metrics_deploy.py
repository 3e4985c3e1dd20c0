"""The monitoring files in deploy/ (promtool is not installed): the alert rules and the
Prometheus configuration load as YAML with the fields Prometheus requires, the
Grafana dashboard loads as JSON, and every metric their expressions name is one
that backend/metrics exports, so a renamed metric cannot silently empty a panel or
disarm an alert."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from backend.metrics import events
from backend.metrics.database import DatabaseCollector
from backend.migrations.alembic_api import upgrade
from backend.db import create_db_engine

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DURATION = re.compile(r"^[0-9]+[smhd]$")
METRIC = re.compile(r"\b(?:backfill|schema)_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> set[str]:
    """Every series name we export: the database collector's and the process counters'."""
    url = f"sqlite:///{tmp_path_factory.mktemp('deploy') / 'shop.db'}"
    upgrade(url, "head")
    engine = create_db_engine(url)
    families = list(DatabaseCollector(engine).collect())
    engine.dispose()
    events.ensure_registered()
    families += list(events.REGISTRY.collect())
    names = set()
    for family in families:
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def load_yaml(relative: str):
    return yaml.safe_load((DEPLOY / relative).read_text())


def test_the_alert_rules_have_what_prometheus_requires_and_name_exported_metrics(exported):
    rules_file = load_yaml("prometheus/alerts.yml")
    groups = rules_file["groups"]
    assert groups and all(group["name"] and group["rules"] for group in groups)
    alerts = {}
    for group in groups:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"]) and rule["alert"] not in alerts
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert "for" not in rule or DURATION.match(rule["for"])
            assert rule["labels"]["severity"] in ("page", "warning")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            named = set(METRIC.findall(rule["expr"]))
            assert named and named <= exported, f"{rule['alert']}: {named - exported} are not exported"
            alerts[rule["alert"]] = rule["expr"]
    # The three the issue asks for: failed, stuck (no batch finished while running), waiting past its window.
    assert 'status="failed"' in alerts["BackfillRunFailed"]
    assert "backfill_run_last_batch_finished_timestamp_seconds" in alerts["BackfillRunStuck"]
    assert 'status="running"' in alerts["BackfillRunStuck"]
    assert "backfill_run_next_window_seconds" in alerts["BackfillRunWaitingPastWindow"]


def test_prometheus_scrapes_the_web_app_with_the_token_and_the_workers(exported):
    config = load_yaml("prometheus/prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web = jobs["shop-web"]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"]["type"] == "Bearer" and web["authorization"]["credentials_file"]
    assert jobs["backfill-workers"]["dns_sd_configs"][0]["port"] == 9808


def test_the_dashboard_is_grafana_json_whose_panels_name_exported_metrics(exported):
    dashboard = json.loads((DEPLOY / "grafana" / "backfills-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(panels) >= 10
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    named = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "prometheus" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            named |= set(METRIC.findall(target["expr"]))
    assert named <= exported, f"{named - exported} are not exported"
    # Every family we export is on the dashboard, except the scrape's own health.
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in exported}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in named}
    assert families - shown <= {"backfill_metrics_database_up", "backfill_runs", "backfill_run_batches",
                                "backfill_run_batches_done", "backfill_run_started_timestamp_seconds"}


def test_the_grafana_provisioning_points_at_the_dashboard_and_prometheus():
    datasource = load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert datasource["uid"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = load_yaml("grafana/provisioning/dashboards/backfills.yml")["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_monitoring_services_are_optional_and_mount_these_files():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    assert all("profiles" not in service for name, service in services.items() if name not in ("prometheus", "grafana"))
    for name in ("web", "worker"):  # multiprocess mode, on a directory fresh at each start
        directory = services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert any(mount.split(":")[0] == directory for mount in services[name]["tmpfs"]), name
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"] == "9808"
