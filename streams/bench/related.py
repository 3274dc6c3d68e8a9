"""Latency of ``GET /items/{id}/similar`` and ``/bought-together`` against a real worker.

On the embedded broker it starts one worker, publishes a simulated shop's catalog and clicks (the
click path fills the co-visitation and co-purchase indexes), then sends, over one kept-alive
connection with the API token, requests for items drawn from the clicked ones, interleaved with
``GET /livez`` (the HTTP floor of the same worker, measured in the same run). Client-side
milliseconds. Run: ``python -m streams.bench.related``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.bench.measure import percentiles
from streams.bench.shop import SimulatedShop
from streams.events import Click
from streams.testing.harness import Cluster, fresh_settings
from streams.tools.broker import EmbeddedBroker
from streams.tools.cluster import get_text

_PROCESSED = re.compile(r'shopguide_events_total\{outcome="processed",topic="[^"]*clicks"\} ([0-9.e+]+)')


def _processed_clicks(url: str) -> float:
    return sum(float(m) for m in _PROCESSED.findall(get_text(url + "/metrics")))


def measure(items: int, clicks: int, requests: int, work: Path) -> dict[str, Any]:
    shop = SimulatedShop(2_000, items)
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        cluster = Cluster(fresh_settings(broker, work))
        try:
            worker = cluster.start_worker()
            now = time.time()
            for item in shop.catalog(now):
                cluster.producer.send(cluster.topics.items, item.item_id.encode(), item.to_json())
            cluster.producer.flush()
            cluster.wait_catalog(items, timeout_s=120)
            sent: list[str] = []
            for event in shop.events("rel", iter(lambda: time.time(), None)):
                if isinstance(event, Click):
                    cluster.producer.send(cluster.topics.clicks, event.user_id.encode(), event.to_json())
                    sent.append(event.item_id)
                    if len(sent) == clicks:
                        break
            cluster.producer.flush()
            deadline = time.monotonic() + 600
            while _processed_clicks(worker.url) < clicks:
                if time.monotonic() > deadline:
                    raise TimeoutError("the worker did not process the clicks within 600 s")
                time.sleep(1.0)
            return _timed(worker.port, cluster.settings.api_token_list[0], sent, requests)
        finally:
            cluster.close()


def _timed(port: int, token: str, clicked: Sequence[str], requests: int) -> dict[str, Any]:
    rng = random.Random(0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    ms: dict[str, list[float]] = {"similar": [], "bought-together": [], "livez": []}
    found = {"similar": 0, "bought-together": 0}
    try:
        for _ in range(requests):
            item_id = rng.choice(clicked)
            for name, path in (
                ("similar", f"/items/{item_id}/similar?k=10"),
                ("bought-together", f"/items/{item_id}/bought-together?k=10"),
                ("livez", "/livez"),
            ):
                t0 = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                ms[name].append(1000 * (time.perf_counter() - t0))
                if response.status != 200:
                    raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
                if name in found:
                    found[name] += len(json.loads(body)["items"])
    finally:
        conn.close()
    out: dict[str, Any] = {"requests": requests}
    for name, values in ms.items():
        out[name] = percentiles(values)
    out["items_per_answer"] = {name: round(n / requests, 2) for name, n in found.items()}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shopguide-related-") as work:
        result = measure(args.items, args.clicks, args.requests, Path(work))
    print(json.dumps({"items": args.items, "clicks": args.clicks, **result}, indent=2))


if __name__ == "__main__":
    main()
