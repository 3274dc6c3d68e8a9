"""Shared fixtures of the static checks of ``deploy/``: the parsed files, the metric catalog of a
worker, a PromQL reference checker and promtool."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    with (DEPLOY / "docker-compose.yml").open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


@pytest.fixture(scope="session")
def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s/, by (kind, name)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for doc in load_yaml_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    with (DEPLOY / "prometheus" / "alerts.yml").open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    with (DEPLOY / "grafana" / "dashboards" / "shopguide.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


@pytest.fixture(scope="session")
def metric_catalog() -> dict[str, frozenset[str]]:
    """Every series name a worker or the shopping guide can expose, with its label names.

    Built from the registries they really serve: :class:`streams.metrics.Metrics` plus Faust's
    Prometheus sensor created on it with the prefix ``streams.engine.app`` uses, and the guide's
    :class:`streams.service.guide_metrics.GuideMetrics`.
    """
    from faust.sensors.prometheus import FaustMetrics
    from prometheus_client.metrics import MetricWrapperBase

    from streams.metrics import Metrics
    from streams.service.guide_metrics import GuideMetrics

    metrics = Metrics()
    faust_metrics = FaustMetrics.create(metrics.registry, "shopguide_faust")
    collectors = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    collectors += list(faust_metrics)
    collectors += [v for v in vars(GuideMetrics()).values() if isinstance(v, MetricWrapperBase)]
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    catalog: dict[str, frozenset[str]] = {}
    for collector in collectors:
        # prometheus_client keeps label names only privately; it is pinned below 1.0.
        labels = frozenset(collector._labelnames)
        for family in collector.describe():
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                catalog[family.name + suffix] = labels | extra
    return catalog


_METRIC = re.compile(r"\b(shopguide_[A-Za-z0-9_]+)")
_SELECTOR = re.compile(r"\b(shopguide_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


@pytest.fixture(scope="session")
def check_promql(metric_catalog: dict[str, frozenset[str]]) -> Callable[[str], set[str]]:
    """A function that fails the test if a PromQL expression names a series or a label no
    worker exposes, and returns the series names it uses."""

    def check(expr: str) -> set[str]:
        names = set(_METRIC.findall(expr))
        unknown = names - metric_catalog.keys()
        assert not unknown, f"unknown metrics {sorted(unknown)} in {expr!r}"
        for name, matchers in _SELECTOR.findall(expr):
            used = set(_MATCHER.findall(matchers))
            assert used <= metric_catalog[name] | TARGET_LABELS, (
                f"{name} has no label {sorted(used - metric_catalog[name])} in {expr!r}"
            )
        known = set().union(TARGET_LABELS, *(metric_catalog[n] for n in names))
        for group in _GROUPING.findall(expr):
            used = {label.strip() for label in group.split(",") if label.strip()}
            unknown = sorted(used - known)
            assert not unknown, f"labels {unknown} of {expr!r} exist on none of {names}"
        return names

    return check


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: it comes with Debian's `prometheus` package")
    return path
