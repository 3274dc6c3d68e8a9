"""A tiny ``shopguide bench`` end to end (embedded broker, real workers): every key of the JSON is
there with a sane value. The real benchmark runs outside the test suite's time budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.testing.harness import KERNEL_CACHE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(330)]


def test_a_tiny_bench_reports_every_figure(tmp_path: Path):
    out, report = tmp_path / "bench.json", tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPGUIDE_")}
    env["SHOPGUIDE_KERNEL_CACHE_DIR"] = str(KERNEL_CACHE_DIR)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.tools.cli",
            "bench",
            "--quick",
            "--duration",
            "1",
            "--only",
            "ceilings,throughput,latency,returning",
            "--json",
            str(out),
            "--report",
            str(report),
        ],
        env=env,
        check=True,
        timeout=320,
    )
    r = json.loads(out.read_text())
    for key in ("throughput_eps", "faust_bare_eps", "faust_forward_eps", "aiokafka_pipe_eps"):
        assert r[key] > 0, key
    for rate in ("1000", "3000"):
        lat = r["latency_ms"][rate]
        assert lat["n"] > 0
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 60_000
        alone = lat["transport_alone"]
        assert alone["n"] > 0 and 0 < alone["p50"] <= alone["p99"] < 60_000
    assert "snapshot_age_s" in r and (r["snapshot_age_s"] is None or r["snapshot_age_s"] >= 0)
    assert 20 < r["rss_mb"] < 8_000
    assert 50 < r["state_bytes_per_user"] < 100_000
    assert r["ratios"]["throughput/faust_bare_eps"] > 0
    assert r["returning"]["history"] == 50 and r["returning"]["eps"] > 0 and r["returning"]["cpu_ms_per_event"] > 0
    assert 0 < r["returning"]["answers_per_event"] <= 1
    shell = r["returning"]["shell"]  # the processing-free worker's drains of the same states
    assert shell["eps"] > 0 and len(shell["drains"]) == len(r["returning"]["drains"])
    assert r["freshness"]["probes"] >= 1
    assert {g["goal"] for g in r["goals"]} and (report / "report.md").exists()
    assert (report / "latency.png").exists() and (report / "throughput.png").exists()
