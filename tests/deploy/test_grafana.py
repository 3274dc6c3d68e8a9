"""The Grafana dashboard: importable as is, laid out, covering what issue 5 asks for, and every
query valid PromQL (promtool) on metrics a worker exposes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def test_dashboard_is_importable_as_is(dashboard: dict[str, Any]) -> None:
    assert dashboard["id"] is None, "an id would clash with the importing Grafana's own"
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert "__inputs" not in dashboard, "provisioning does not resolve import inputs"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_queries_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert target["expr"].strip()


def test_panel_ids_are_unique_and_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in all_panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        columns, rows = range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        area = {(x, y) for x in columns for y in rows}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


@pytest.mark.parametrize(
    "needle",
    [
        "rate(shopguide_events_total",  # throughput
        # latency percentiles
        "histogram_quantile(0.5, sum by (le) (rate(shopguide_event_to_recommendation_seconds",
        "histogram_quantile(0.99, sum by (le) (rate(shopguide_event_to_recommendation_seconds",
        "sum by (reason) (rate(shopguide_deadletter_total",  # dead letters by reason
        "shopguide_model_version",
        "shopguide_model_snapshot_age_seconds",
        "avg by (task) (shopguide_train_loss",  # loss per task
        "increase(shopguide_online_hits_total",  # hit rate
        "sum by (topic) (shopguide_consumer_lag",  # lag
    ],
)
def test_dashboard_shows(dashboard: dict[str, Any], needle: str) -> None:
    assert any(needle in expr for expr in queries(dashboard)), needle


def test_queries_use_only_metrics_and_labels_a_worker_exposes(
    dashboard: dict[str, Any], check_promql: Callable[[str], set[str]]
) -> None:
    used: set[str] = set()
    for expr in queries(dashboard):
        if expr.startswith("label_values("):
            metric = expr.removeprefix("label_values(").split(",")[0]
            used |= check_promql(metric)
        else:
            used |= check_promql(expr)
    assert used


def test_queries_are_valid_promql(dashboard: dict[str, Any], promtool: str, tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, as a recording rule for promtool."""
    substitutions = {"$__rate_interval": "1m", "$instance": ".*"}
    rules = []
    for i, expr in enumerate(queries(dashboard)):
        if expr.startswith("label_values("):
            continue
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
