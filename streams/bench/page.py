"""``shopguide bench --only page``: the shopping guide and the shopper's page, beside a real worker.

On fresh topics it starts a worker and a guide, publishes the guide's demo catalog (12 items, 75
reviews) and 120 more items in four categories, then measures:

* ``/ask`` over HTTP, client-side: the gold questions of the demo catalog in both languages;
* how long a new review takes to become answerable: from its publication until an answer quotes it;
* in Debian's Chromium (when installed): the page's weight, its first contentful paint, and tap to
  repainted feed (a shopper's action posted by the page until the recommendation that action
  triggered is on screen, through the worker and back over server-sent events).
"""

from __future__ import annotations

import json
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from streams.bench.measure import percentiles
from streams.events import Item, Review
from streams.settings import Settings
from streams.testing.browser import CHROMIUM, launch
from streams.tools.broker import free_port
from streams.tools.cluster import GuideProcess, WorkerProcess, post_json
from streams.tools.producer import EventProducer
from streams.topics import Topics

CATEGORIES = ("shoes", "bags", "hats", "kitchen")
#: The page's JavaScript for one tap: post the action, then wait until the feed shows the
#: recommendation that this action triggered; milliseconds between the two.
_TAP = """async (itemId) => {
  const feed = document.querySelector('[data-testid=feed]');
  const t0 = performance.now();
  const r = await fetch('/api/actions', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                        body: JSON.stringify({item_id: itemId, action: 'view'})});
  const id = (await r.json()).event_id;
  while (feed.dataset.trigger !== id) {
    if (performance.now() - t0 > 10000) return null;
    await new Promise((ok) => requestAnimationFrame(ok));
  }
  return performance.now() - t0;
}"""


def _demo_catalog() -> dict[str, Any]:
    return json.loads(resources.files("guide").joinpath("gold", "catalog.json").read_text(encoding="utf-8"))


def _gold_questions() -> list[dict[str, Any]]:
    text = resources.files("guide").joinpath("gold", "questions.json").read_text(encoding="utf-8")
    return list(json.loads(text)["questions"])


def run_page_bench(
    settings: Settings, work: Path, questions: int = 300, reviews: int = 20, taps: int = 20
) -> dict[str, Any]:
    topics = Topics(settings)
    results: dict[str, Any] = {}
    worker = WorkerProcess(settings, work / "page-worker.log").start()
    guide = GuideProcess(
        settings.with_(data_dir=work / "page-guide", guide_port=free_port(), guide_demo_login=True),
        work / "page-guide.log",
    )
    try:
        worker.wait_ready(300)
        catalog = _demo_catalog()
        with EventProducer(settings) as producer:
            items = [Item(**i) for i in catalog["items"]]
            items += [Item(f"{c}-{n}", c, f"{c} {n}", 10.0 + n, ts=time.time()) for c in CATEGORIES for n in range(30)]
            for item in items:
                producer.send(topics.items, item.item_id.encode(), item.to_json())
            for review in catalog["reviews"]:
                producer.send(topics.reviews, review["user_id"].encode(), json.dumps(review).encode())
        guide.start().wait_ready(300)
        results["ask_ms"] = _ask_latency(guide, questions)
        results["review_answerable_s"] = time_to_answerable(settings, topics, guide, reviews)
        if CHROMIUM.exists():
            results["browser"] = _browser(guide, taps)
        else:
            results["browser"] = {"skipped": "Debian's chromium is not installed (apt-get install chromium)"}
    finally:
        guide.stop()
        worker.stop()
    return results


def _ask_latency(guide: GuideProcess, n: int) -> dict[str, Any]:
    gold = _gold_questions()
    times = []
    for k in range(n + 20):
        q = gold[k % len(gold)]
        body = json.dumps({"user_id": f"bench-{k % 50}", "text": q["text"], "item_id": q.get("item_id")})
        started = time.perf_counter()
        status, _ = post_json(guide.url + "/ask", body.encode())
        if status != 200:
            raise RuntimeError(f"/ask answered {status}")
        if k >= 20:  # the first ones warm the caches up
            times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def time_to_answerable(settings: Settings, topics: Topics, guide: GuideProcess, n: int) -> dict[str, Any]:
    """Seconds from publishing each of ``n`` new reviews of ``g-earbuds`` until an answer quotes it."""
    seconds = []
    with EventProducer(settings) as producer:
        for k in range(n):
            word = f"widget{uuid.uuid4().hex[:6]}"
            review = Review(
                f"bench-r-{word}", "bench-reviewer", "g-earbuds", f"The {word} clip snapped off.", time.time()
            )
            producer.send(topics.reviews, review.user_id.encode(), review.to_json())
            producer.flush()
            published = time.monotonic()
            body = json.dumps({"user_id": "bench-asker", "text": f"Is the {word} clip sturdy?", "item_id": "g-earbuds"})
            while time.monotonic() - published < 30:
                _, answer = post_json(guide.url + "/ask", body.encode())
                if any(e.get("event_id") == review.event_id for e in answer.get("evidence", ())):
                    seconds.append(time.monotonic() - published)
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError(f"review {k} not answerable after 30 s")
    stats = percentiles([s * 1000 for s in seconds])
    return {k: (round(v / 1000, 3) if isinstance(v, float) else v) for k, v in stats.items()}


def _browser(guide: GuideProcess, taps: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
            page = context.new_page()
            sizes: list[int] = []
            page.on(
                "response",
                lambda r: (
                    sizes.append(len(r.body()))
                    if r.request.resource_type in ("document", "script", "stylesheet")
                    else None
                ),
            )
            page.goto(f"{guide.url}/?user=bench-shopper")
            page.wait_for_selector("[data-testid=status][data-state=live]")
            paint = page.evaluate(
                "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
            )
            weight = sum(sizes)
            page.evaluate(_TAP, "shoes-0")  # the first recommendation of a new shopper
            times = []
            for k in range(taps):
                ms = page.evaluate(_TAP, f"{CATEGORIES[k % len(CATEGORIES)]}-{k % 30}")
                if ms is None:
                    raise RuntimeError("a tap's recommendation did not reach the page within 10 s")
                times.append(ms)
            return {"page_bytes": weight, "first_contentful_paint_ms": paint, "tap_to_feed_ms": percentiles(times)}
        finally:
            browser.close()
