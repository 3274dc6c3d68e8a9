"""``promtool test rules``: the alerts fire on synthetic series where they should and stay quiet
where they should not (deploy/prometheus/alerts_test.yml). Then the same tests against broken
copies of the rules must fail, which shows that they check what they claim to."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
TESTS = PROMETHEUS / "alerts_test.yml"


def run_tests(promtool: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return sorted(r["alert"] for g in groups for r in g["rules"] if "alert" in r)


def mutated_rules(tmp_path: Path, alert: str, old: str, new: str) -> Path:
    """A copy of the rules where one alert's expression has ``old`` replaced, beside the test cases
    that check that alert (the others pass or fail alike, the other rules being unchanged; each
    case costs promtool up to seconds)."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert old in rule["expr"], f"{alert}'s expression no longer contains {old!r}"
    rule["expr"] = rule["expr"].replace(old, new)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    tests: dict[str, Any] = yaml.safe_load(TESTS.read_text(encoding="utf-8"))
    tests["tests"] = [
        case for case in tests["tests"] if any(check["alertname"] == alert for check in case.get("alert_rule_test", []))
    ]
    assert tests["tests"], f"no test case checks {alert}"
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    return tmp_path


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    result = run_tests(promtool, PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_both_firing_and_quiet() -> None:
    tests = yaml.safe_load(TESTS.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == set(alert_names())
    assert quiet == set(alert_names())


@pytest.mark.parametrize("alert", alert_names())
def test_unit_tests_fail_when_the_alert_never_fires(promtool: str, tmp_path: Path, alert: str) -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    (expr,) = [r["expr"] for g in groups for r in g["rules"] if r.get("alert") == alert]
    result = run_tests(promtool, mutated_rules(tmp_path, alert, expr, "vector(1) == 0"))
    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        # Events in the last 15 minutes at the 20-minute evaluation: the stop must be noticed
        # within the 5-minute window.
        ("ShopguideNoEvents", "[5m]", "[15m]"),
        # Without the fallback, no series at all would be silence instead of an alert.
        ("ShopguideNoEvents", " or vector(0)", ""),
        ("ShopguideDeadLetterRatioHigh", "> 0.05", "> 0.2"),
        ("ShopguideRecommendationLatencyHigh", "> 0.05", "> 0.1"),
        ("ShopguideModelSnapshotStale", "> 900", "> 3600"),
        # A lag that is high but steady (the reviews topic) must not fire.
        ("ShopguideConsumerLagGrowing", "[10m])) > 0", "[10m])) >= 0"),
        # 150 trials in 30 minutes are too few to judge.
        ("ShopguideOnlineHitRateCollapse", ">= 200", ">= 0"),
        ("ShopguideGuideModelFallback", "< 1", "< 0"),
        ("ShopguideGuideHandoffRateRising", "> 0.3", "> 0.6"),
    ],
)
def test_unit_tests_catch_a_changed_threshold_or_guard(
    promtool: str, tmp_path: Path, alert: str, old: str, new: str
) -> None:
    result = run_tests(promtool, mutated_rules(tmp_path, alert, old, new))
    assert result.returncode != 0, f"replacing {old!r} by {new!r} went unnoticed"
    assert f"alertname: {alert}" in result.stdout + result.stderr
