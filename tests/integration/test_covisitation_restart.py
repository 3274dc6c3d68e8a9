"""A real worker's co-visitation survives a restart: ``/items/{id}/similar`` and
``/bought-together`` answer the same after a stop (the checkpoint written at shutdown) and after a
crash (the periodic checkpoint), instead of starting from an empty index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.events import Click, Item
from streams.testing.harness import Cluster, fresh_settings, wait_until
from streams.tools.broker import EmbeddedBroker
from streams.tools.cluster import WorkerProcess, get_json

pytestmark = pytest.mark.integration

ITEMS = 12


@pytest.fixture(scope="module")
def shop(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(fresh_settings(broker, tmp_path_factory.mktemp("covis"), covis_checkpoint_s=1.0))
    try:
        c.start_worker()
        now = time.time()
        for n in range(ITEMS):
            c.producer.send(c.topics.items, f"cv-{n}".encode(), Item(f"cv-{n}", "tea", ts=now).to_json())
        c.producer.flush()
        c.wait_catalog(ITEMS)
        yield c
    finally:
        c.close()


def _shop_and_wait(c: Cluster, tag: str, walks: list[list[tuple[str, str]]]) -> None:
    last = []
    for u, walk in enumerate(walks):
        user = f"cv-{tag}-user-{u}"
        for n, (item, action) in enumerate(walk):
            click = Click(f"{user}-{n}", user, item, action, time.time(), "tea")
            c.producer.send(c.topics.clicks, user.encode(), click.to_json())
        last.append(f"{user}-{len(walk) - 1}")
    c.producer.flush()
    c.recommendations.wait_for(lambda m: isinstance(m, dict) and m["trigger_event_id"] in last, len(last), 60)


def _related(worker: WorkerProcess) -> dict[str, list[tuple[str, float]]]:
    """Per item, its co-visited and co-purchased items with their weights (the category's popular
    items that top up ``similar`` depend on popularity, not on co-visitation: left out)."""
    out = {}
    for n in range(ITEMS):
        for what in ("similar", "bought-together"):
            status, body = get_json(f"{worker.url}/items/cv-{n}/{what}?k=10")
            assert status == 200, body
            out[f"cv-{n}/{what}"] = [(i["item_id"], i["score"]) for i in body["items"] if i.get("source") != "category"]
    return out


def _restart(c: Cluster, crash: bool) -> WorkerProcess:
    worker = c.workers[0]
    worker.kill() if crash else worker.stop()
    worker.start().wait_ready()
    c.wait_catalog(ITEMS)
    return worker


def _checkpoint(c: Cluster) -> Path:
    return c.settings.data_dir / "covisitation" / "purchases.ckpt"  # written after views.ckpt


def test_related_items_are_the_same_after_a_stop_and_after_a_crash(shop: Cluster) -> None:
    views = [("cv-1", "view"), ("cv-2", "view"), ("cv-3", "view"), ("cv-1", "buy"), ("cv-4", "buy")]
    _shop_and_wait(shop, "a", [views, [("cv-2", "view"), ("cv-5", "view"), ("cv-2", "buy"), ("cv-4", "buy")]])
    before = _related(shop.workers[0])
    assert {i for i, _ in before["cv-1/similar"]} == {"cv-2", "cv-3", "cv-4"}
    assert [i for i, _ in before["cv-1/bought-together"]] == ["cv-4"]

    after_stop = _related(_restart(shop, crash=False))
    assert after_stop == before

    _shop_and_wait(shop, "b", [[("cv-6", "view"), ("cv-7", "view"), ("cv-6", "buy"), ("cv-8", "buy")]])
    before = _related(shop.workers[0])
    assert [i for i, _ in before["cv-8/bought-together"]] == ["cv-6"]
    written = time.time()
    # The periodic checkpoint (every second here) after the last click's answer: what a crash keeps.
    wait_until(lambda: _checkpoint(shop).stat().st_mtime > written + 0.5, 30, "a checkpoint after the clicks")
    after_crash = _related(_restart(shop, crash=True))
    assert after_crash == before
