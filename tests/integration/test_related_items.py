"""``GET /items/{id}/similar`` and ``/bought-together`` over HTTP against two real workers: any
worker answers from the clicks it processed, with the API's token and id checks."""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request

import pytest

from streams.events import Click, Item
from streams.partitioning import partition_for
from streams.testing.harness import Cluster
from streams.tools.cluster import get_json

pytestmark = pytest.mark.integration


def shoppers() -> list[str]:
    """A shopper in each of the four partitions, so that both workers see the same pattern."""
    found: dict[int, str] = {}
    for n in itertools.count():
        found.setdefault(partition_for(f"rel-user-{n}", 4), f"rel-user-{n}")
        if len(found) == 4:
            return list(found.values())
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def shop(two_workers: Cluster) -> Cluster:
    c, now = two_workers, time.time()
    for n in range(10):
        c.producer.send(c.topics.items, f"rel-{n}".encode(), Item(f"rel-{n}", "tea", ts=now).to_json())
    c.producer.flush()
    c.wait_catalog(10)
    last = []
    for user in shoppers():
        for n, (item_id, action) in enumerate(
            (("rel-1", "view"), ("rel-2", "view"), ("rel-1", "buy"), ("rel-3", "buy"))
        ):
            click = Click(f"{user}-{n}", user, item_id, action, time.time(), "tea")
            c.producer.send(c.topics.clicks, user.encode(), click.to_json())
        last.append(f"{user}-3")
    c.producer.flush()
    c.recommendations.wait_for(lambda m: isinstance(m, dict) and m["trigger_event_id"] in last, len(last), 60)
    return c


def test_any_worker_answers_similar_and_bought_together(shop: Cluster) -> None:
    for worker in shop.workers:
        status, body = get_json(f"{worker.url}/items/rel-1/similar?k=3")
        assert status == 200, body
        assert body["item_id"] == "rel-1" and len(body["items"]) == 3
        first = body["items"][0]
        assert first["item_id"] in ("rel-2", "rel-3") and first["source"] == "covisited" and first["score"] > 0
        assert all(i["item_id"] != "rel-1" for i in body["items"])
        status, body = get_json(f"{worker.url}/items/rel-1/bought-together")
        assert status == 200 and [i["item_id"] for i in body["items"]] == ["rel-3"], body
        status, body = get_json(f"{worker.url}/items/rel-2/bought-together")
        assert status == 200 and body["items"] == []  # viewed, never bought


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/items/rel-1/similar?k=0", 400),
        ("/items/rel-1/similar?k=101", 400),
        ("/items/rel-1/bought-together?k=ten", 400),
        ("/items/%20rel-1/similar", 400),
        ("/items/nowhere/similar", 404),
        ("/items/nowhere/bought-together", 404),
    ],
)
def test_bad_requests_are_refused(shop: Cluster, path: str, status: int) -> None:
    got, body = get_json(shop.workers[0].url + path)
    assert got == status and "error" in body


def test_a_token_is_required(shop: Cluster) -> None:
    for path in ("/items/rel-1/similar", "/items/rel-1/bought-together"):
        request = urllib.request.Request(shop.workers[1].url + path, headers={"Authorization": "Bearer wrong"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 401
