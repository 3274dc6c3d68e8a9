"""A real Prometheus server scrapes a real worker; the figures are read back through its query API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.events import Click
from streams.testing.harness import Cluster, fresh_settings
from streams.tools.broker import free_port, wait_for_port
from streams.tools.children import die_with_parent
from streams.tools.cluster import get_json

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="needs Debian's prometheus package (.ci/run installs it)"
    ),
]


class Prometheus:
    def __init__(self, target: str, work: Path) -> None:
        self.port = free_port()
        config = work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: shopguide\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        with open(work / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),  # gone with the test run, however it ends
            )
        wait_for_port(self.port, 30, self.proc)

    def query(self, expr: str) -> float | None:
        status, body = get_json(f"http://127.0.0.1:{self.port}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert status == 200, body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, expected: float, timeout_s: float = 40.0) -> float | None:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.query(expr)
            if value is not None and abs(value - expected) < 1e-9:
                return value
            time.sleep(0.5)
        return value

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def monitored(broker, tmp_path_factory) -> Iterator[tuple[Cluster, Prometheus]]:
    work = tmp_path_factory.mktemp("prometheus")
    cluster = Cluster(fresh_settings(broker, work))
    worker = cluster.start_worker()
    prom = Prometheus(f"127.0.0.1:{worker.settings.web_port}", work)
    yield cluster, prom
    prom.stop()
    cluster.close()


def test_counters_move_by_exactly_the_events_sent(monitored):
    cluster, prom = monitored
    t = cluster.topics
    n_valid, bad = 25, {"json": 3, "unknown_action": 2, "missing_field": 1}
    for n in range(n_valid):
        click = Click(f"pm-{n}", f"pm-user-{n % 5}", f"pm-item-{n % 7}", "view", time.time(), "c")
        cluster.send("clicks", click.user_id, click.to_json())
    for n in range(bad["json"]):
        cluster.send("clicks", None, b"{broken json " + str(n).encode())
    for n in range(bad["unknown_action"]):
        cluster.send(
            "clicks",
            "u",
            json.dumps(
                {"event_id": f"x{n}", "user_id": "u", "item_id": "i", "action": "steal", "ts": time.time()}
            ).encode(),
        )
    no_user = {"event_id": "m", "item_id": "i", "action": "view", "ts": time.time()}
    cluster.send("clicks", None, json.dumps(no_user).encode())

    processed = f'sum(shopguide_events_total{{topic="{t.clicks}",outcome="processed"}})'
    assert prom.wait_for(processed, n_valid) == n_valid
    dead = f'sum(shopguide_events_total{{topic="{t.clicks}",outcome="deadlettered"}})'
    assert prom.wait_for(dead, sum(bad.values())) == sum(bad.values())
    for reason, count in bad.items():
        assert prom.wait_for(f'shopguide_deadletter_total{{reason="{reason}"}}', count) == count, reason
    assert prom.wait_for("shopguide_recommendations_total", n_valid) == n_valid
    assert prom.wait_for("shopguide_event_to_recommendation_seconds_count", n_valid) == n_valid
    p99 = prom.query("histogram_quantile(0.99, sum by (le) (shopguide_event_to_recommendation_seconds_bucket))")
    assert p99 is not None and 0 < p99 < 10
    # Lag and table sizes are refreshed every few seconds.
    deadline = time.monotonic() + 30
    while prom.query('shopguide_table_keys{table="users"}') != 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert prom.query('shopguide_table_keys{table="users"}') == 5
    assert prom.query(f'sum(shopguide_consumer_lag{{topic="{t.clicks}"}})') == 0
    assert prom.query("shopguide_faust_messages_received_total") is not None  # Faust's own sensor, same registry
