"""The Prometheus alert rules and scrape configuration: structure, runbook links, metric names,
and promtool's own checks."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
README = DEPLOY / "README.md"

#: The alerts issue 5 asks for, by what they watch.
REQUIRED_ALERTS = {
    "ShopguideNoEvents": "shopguide_events_total",
    "ShopguideDeadLetterRatioHigh": "shopguide_events_total",
    "ShopguideRecommendationLatencyHigh": "shopguide_event_to_recommendation_seconds_bucket",
    "ShopguideModelSnapshotStale": "shopguide_model_snapshot_age_seconds",
    "ShopguideConsumerLagGrowing": "shopguide_consumer_lag",
    "ShopguideOnlineHitRateCollapse": "shopguide_online_trials_total",
    "ShopguideSnapshotSignatureRefused": "shopguide_model_snapshots_rejected_total",
}


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.+)", line)):
            anchors.add(github_anchor(m.group(1)))
    return anchors


def test_the_required_alerts_exist_and_watch_their_metric(
    alert_rules: list[dict[str, Any]],
) -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules if "alert" in rule}
    assert set(REQUIRED_ALERTS) <= exprs.keys()
    for name, metric in REQUIRED_ALERTS.items():
        assert metric in exprs[name], name


def test_alert_names_are_unique(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules if "alert" in rule]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_alert_has_summary_severity_and_a_runbook_that_exists(alert_rules: list[dict[str, Any]], name: str) -> None:
    (rule,) = [r for r in alert_rules if r.get("alert") == name]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"].strip()
    assert "for" in rule, "every alert waits before firing"
    runbook = rule["annotations"]["runbook"]
    path, _, anchor = runbook.partition("#")
    assert path == "deploy/README.md" and anchor, runbook
    assert (REPO / path).is_file()
    assert anchor in markdown_anchors(REPO / path), f"{runbook}: no such section"


def test_each_alert_has_its_own_runbook_section(alert_rules: list[dict[str, Any]]) -> None:
    runbooks = [r["annotations"]["runbook"] for r in alert_rules if "alert" in r]
    assert len(runbooks) == len(set(runbooks))


def test_readme_internal_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    anchors = markdown_anchors(README)
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "the README links its runbooks"
    assert links <= anchors, sorted(links - anchors)


def test_rules_use_only_metrics_and_labels_a_worker_exposes(
    alert_rules: list[dict[str, Any]], check_promql: Callable[[str], set[str]]
) -> None:
    for rule in alert_rules:
        assert check_promql(rule["expr"]), f"{rule.get('alert')} uses no shopguide metric"


def test_scrape_config_loads_the_rules_and_scrapes_the_workers_metrics_path() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "shopguide"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
