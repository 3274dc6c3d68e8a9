"""The shopper's page in a real browser (Debian's Chromium through playwright) against the embedded
broker, a real worker and a real guide. Screenshots go to ``test-artifacts/page/`` (not committed).

Skipped when ``/usr/bin/chromium`` is absent (``apt-get install chromium fonts-wqy-microhei``).
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.events import Click, Item
from streams.service.sessions import SessionSigner
from streams.service.shelf import reason_of
from streams.testing.browser import CHROMIUM, launch
from streams.testing.harness import Cluster, fresh_settings
from streams.tools.broker import EmbeddedBroker
from streams.tools.cluster import GuideProcess, post_json

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "page"
CATEGORIES = ("shoes", "bags", "hats", "kitchen")
PER_CATEGORY = 15

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def shop(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, GuideProcess]]:
    root = tmp_path_factory.mktemp("page")
    cluster = Cluster(fresh_settings(broker, root))
    try:
        cluster.start_worker()
        catalog = json.loads((Path(__file__).resolve().parents[2] / "guide" / "gold" / "catalog.json").read_text())
        items = [Item(**{**i, "ts": time.time()}) for i in catalog["items"]]
        items += [
            Item(f"{c}-{n}", c, f"{c.title()} model {n}", 10.0 + n, ts=time.time())
            for c in CATEGORIES
            for n in range(PER_CATEGORY)
        ]
        for item in items:
            cluster.producer.send(cluster.topics.items, item.item_id.encode(), item.to_json())
        for review in catalog["reviews"]:
            cluster.producer.send(cluster.topics.reviews, review["user_id"].encode(), json.dumps(review).encode())
        cluster.producer.flush()
        cluster.wait_catalog(len(items))
        guide = cluster.start_guide(root / "guide")
        yield cluster, guide
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


class Shopper:
    """One shopper's phone: a 390x844 touch page signed in through the demo login."""

    def __init__(self, browser: Browser, guide: GuideProcess, user: str, lang: str = "en") -> None:
        self.guide, self.user = guide, user
        self.context = browser.new_context(
            viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, locale=lang
        )
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{guide.url}/?user={user}")
        expect(self.page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=10_000)

    def tap_item(self, item_id: str) -> None:
        self.page.goto(f"{self.guide.url}/items/{item_id}")
        self.page.get_by_test_id("action-view").click()
        expect(self.page.locator("#action-done")).not_to_be_empty()

    def feed_categories(self) -> list[str]:
        return self.page.locator("[data-testid=card]").evaluate_all("cards => cards.map(c => c.dataset.category)")

    def feed_ids(self) -> list[str]:
        return self.page.locator("[data-testid=card]").evaluate_all("cards => cards.map(c => c.dataset.itemId)")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def test_tapping_five_items_of_a_category_fills_the_feed_with_it(shop, browser):
    cluster, guide = shop
    shopper = Shopper(browser, guide, "page-shopper-1")
    for n in range(4):
        shopper.tap_item(f"shoes-{n}")
    shopper.page.get_by_test_id("back").click()  # the feed, live, in the page itself
    expect(shopper.page.get_by_test_id("feed")).to_be_visible()
    shopper.page.get_by_test_id("card").first.wait_for(timeout=10_000)
    # The fifth tap, on a card of the feed; the feed (hidden behind the item page) follows.
    started = time.monotonic()
    shopper.page.locator("[data-testid=card][data-category=shoes]").first.click()
    expect(shopper.page.get_by_test_id("item-page")).to_be_visible()
    shopper.page.wait_for_function(
        """() => { const cs = [...document.querySelectorAll('[data-testid=card]')].slice(0, 10);
                   return cs.length >= 5 && cs.filter(c => c.dataset.category === 'shoes').length > cs.length / 2; }""",
        timeout=2_000,
    )
    print(f"feed mostly shoes {time.monotonic() - started:.2f} s after the fifth tap")
    shopper.page.get_by_test_id("back").click()
    chips = shopper.page.get_by_test_id("interest-chip")
    expect(chips.first).to_have_attribute("data-category", "shoes")
    expect(shopper.page.get_by_test_id("reason").first).not_to_be_empty()
    expect(shopper.page.get_by_test_id("sentiment-badge").first).not_to_be_empty()
    shopper.shot("feed-en")
    # Each card's reason is the engine's, for that item in the recommendation the feed shows.
    shown = shopper.page.evaluate(
        """() => ({trigger: document.getElementById('feed').dataset.trigger,
                   cards: [...document.querySelectorAll('[data-testid=card]')].map(c => {
                     const r = c.querySelector('[data-testid=reason]');
                     return {id: c.dataset.itemId, kind: r.dataset.kind, text: r.textContent}; })})"""
    )
    [rec] = cluster.recommendations.wait_for(
        lambda m: isinstance(m, dict) and m["trigger_event_id"] == shown["trigger"], 1, 10
    )
    engine = {i["item_id"]: i["reasons"] for i in rec["items"]}
    assert all(engine[c["id"]] for c in shown["cards"]), engine
    assert [c["kind"] for c in shown["cards"]] == [reason_of(engine[c["id"]], "", [])["kind"] for c in shown["cards"]]
    assert all(c["text"] for c in shown["cards"])
    shopper.page.get_by_test_id("lang-switch").click()
    expect(shopper.page.get_by_test_id("reason").first).to_have_text(re.compile("[\u4e00-\u9fff]"))
    shopper.page.get_by_test_id("lang-switch").click()
    assert shopper.errors == []
    shopper.close()


def test_a_bought_or_sold_out_item_leaves_the_feed(shop, browser):
    cluster, guide = shop
    shopper = Shopper(browser, guide, "page-shopper-2")
    for n in range(3):
        shopper.tap_item(f"bags-{n}")
    shopper.page.get_by_test_id("back").click()
    shopper.page.get_by_test_id("card").first.wait_for(timeout=10_000)
    bought = shopper.feed_ids()[0]
    shopper.page.get_by_test_id("card").first.click()
    expect(shopper.page.get_by_test_id("item-page")).to_be_visible()
    shopper.page.get_by_test_id("action-buy").click()
    expect(shopper.page.locator("#action-done")).not_to_be_empty()
    shopper.page.get_by_test_id("back").click()
    shopper.page.wait_for_function(
        f"() => ![...document.querySelectorAll('[data-testid=card]')].some(c => c.dataset.itemId === '{bought}')",
        timeout=5_000,
    )
    shopper.page.get_by_test_id("card").first.wait_for()
    sold_out = shopper.feed_ids()[0]
    category = shopper.feed_categories()[0]
    item = Item(sold_out, category, f"{category.title()} (sold out)", 1.0, in_stock=False, ts=time.time() + 1)
    cluster.send("items", sold_out, item.to_json())
    shopper.page.wait_for_function(
        f"() => ![...document.querySelectorAll('[data-testid=card]')].some(c => c.dataset.itemId === '{sold_out}')",
        timeout=5_000,
    )
    assert shopper.errors == []
    shopper.close()


def test_not_interested_removes_the_item_from_the_next_feed(shop, browser):
    _, guide = shop
    shopper = Shopper(browser, guide, "page-shopper-5")
    shopper.tap_item("hats-0")
    shopper.tap_item("hats-1")
    shopper.page.get_by_test_id("back").click()
    shopper.page.get_by_test_id("card").first.wait_for(timeout=10_000)
    disliked = shopper.feed_ids()[0]
    shopper.page.goto(f"{guide.url}/items/{disliked}")  # no action: the feed still holds the item
    with shopper.page.expect_response("**/api/actions") as posted:
        shopper.page.get_by_test_id("action-dislike").click()
    expect(shopper.page.locator("#action-done")).to_have_text("Got it, we will not show you this item again.")
    event_id = posted.value.json()["event_id"]
    shopper.page.get_by_test_id("back").click()
    expect(shopper.page.get_by_test_id("feed")).to_have_attribute("data-trigger", event_id, timeout=5_000)
    assert shopper.feed_ids() and disliked not in shopper.feed_ids()
    assert shopper.errors == []
    shopper.close()


def test_cards_name_the_item_they_were_viewed_with_and_say_bought_together(shop, browser):
    cluster, guide = shop
    # Other shoppers: kitchen-0 viewed with kitchen-1; kitchen-10 and kitchen-12 bought by one shopper
    # with five views between them (co-purchased, not co-visited).
    walks = {
        "page-other-1": [("kitchen-0", "view"), ("kitchen-1", "view")],
        "page-other-2": [
            ("kitchen-10", "buy"),
            *((f"kitchen-{n}", "view") for n in range(5, 10)),
            ("kitchen-12", "buy"),
        ],
    }
    for user, walk in walks.items():
        for n, (item_id, action) in enumerate(walk):
            click = Click(f"{user}-{n}", user, item_id, action, time.time(), "kitchen")
            cluster.producer.send(cluster.topics.clicks, user.encode(), click.to_json())
    cluster.producer.flush()
    for user, walk in walks.items():
        last = f"{user}-{len(walk) - 1}"
        cluster.recommendations.wait_for(lambda m, last=last: isinstance(m, dict) and m["trigger_event_id"] == last)
    shopper = Shopper(browser, guide, "page-shopper-6")
    shopper.tap_item("kitchen-0")
    shopper.page.goto(f"{guide.url}/items/kitchen-10")
    with shopper.page.expect_response("**/api/actions") as posted:
        shopper.page.get_by_test_id("action-buy").click()
    event_id = posted.value.json()["event_id"]
    read = """() => [...document.querySelectorAll('[data-testid=card]')].map(c => {
                const r = c.querySelector('[data-testid=reason]');
                return {id: c.dataset.itemId, kind: r.dataset.kind, text: r.textContent}; })"""
    # One place of each list goes to a fresh kitchen item (exploration, drawn per click), and it
    # may take the place of kitchen-12 or kitchen-12 itself: the shopper looks at kitchen-0 again
    # (a new draw, the same sources) until a list ranks kitchen-12, at most three times.
    for _ in range(3):
        shopper.page.get_by_test_id("back").click()
        expect(shopper.page.get_by_test_id("feed")).to_have_attribute("data-trigger", event_id, timeout=5_000)
        cards = shopper.page.evaluate(read)
        [rec] = cluster.recommendations.wait_for(
            lambda m, e=event_id: isinstance(m, dict) and m["trigger_event_id"] == e
        )
        engine = {i["item_id"]: i["reasons"] for i in rec["items"]}
        if "explore" not in engine.get("kitchen-12", ["explore"]):
            break
        with shopper.page.expect_response("**/api/actions") as posted:
            shopper.tap_item("kitchen-0")
        event_id = posted.value.json()["event_id"]
    covisited = {c["id"]: c["text"] for c in cards if c["kind"] == "covisited"}
    sources = {i: r.partition(":")[2] for i, rs in engine.items() for r in rs if r.startswith("covisited:")}
    assert covisited and set(covisited) <= set(sources), (cards, engine)
    for item_id, text in covisited.items():  # the source's title, from the catalog
        assert text == f"often viewed with Kitchen model {sources[item_id].split('-')[1]}, which you viewed"
    assert {"kitchen-1", "kitchen-5"} <= set(covisited)  # through the shopper's view and their purchase
    assert sources["kitchen-1"] == "kitchen-0" and sources["kitchen-5"] == "kitchen-10"
    together = [c for c in cards if c["kind"] == "bought_together"]
    assert [c["id"] for c in together] == ["kitchen-12"] and "bought_together" in engine["kitchen-12"]
    assert together[0]["text"] == "often bought with items you bought"
    shopper.page.get_by_test_id("lang-switch").click()
    cards = {c["id"]: c["text"] for c in shopper.page.evaluate(read)}
    assert cards["kitchen-1"] == "常与你看过的「Kitchen model 0」一起被浏览"
    assert cards["kitchen-12"] == "常与你买过的商品一起购买"
    assert shopper.errors == []
    shopper.close()


def test_questions_in_english_and_chinese_get_answers_with_evidence_and_a_hand_off(shop, browser):
    _, guide = shop
    shopper = Shopper(browser, guide, "page-shopper-3")
    page = shopper.page
    page.goto(f"{guide.url}/items/g-earbuds")
    expect(page.get_by_test_id("item-page")).to_be_visible()
    page.get_by_test_id("ask-input").fill("How long does the battery last?")
    page.get_by_test_id("ask-submit").click()
    expect(page.get_by_test_id("evidence").first).to_be_visible(timeout=5_000)
    expect(page.get_by_test_id("answer")).to_have_attribute("data-handoff", "false")
    shopper.shot("item-chat-en")
    page.get_by_test_id("lang-switch").click()
    expect(page.get_by_test_id("action-buy")).to_have_text("购买")
    page.get_by_test_id("ask-input").fill("电池能用多久")
    page.get_by_test_id("ask-submit").click()
    expect(page.locator("#answer .text")).to_have_text(re.compile("[\u4e00-\u9fff]"), timeout=5_000)  # in Chinese
    expect(page.get_by_test_id("evidence").first).to_be_visible()
    shopper.shot("item-chat-zh")
    page.get_by_test_id("handoff").click()
    expect(page.get_by_test_id("handoff-notice")).to_be_visible(timeout=5_000)
    expect(page.get_by_test_id("answer")).to_have_attribute("data-handoff", "true")
    page.get_by_test_id("back").click()
    shopper.shot("feed-zh")
    assert shopper.errors == []
    shopper.close()


def test_a_session_opens_only_its_own_shoppers_feed(shop):
    _, guide = shop
    signer = SessionSigner(guide.settings.guide_secret.encode(), 60)
    token = signer.mint("alice", time.time())

    def status(path: str, tok: str | None) -> int:
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        request = urllib.request.Request(guide.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("/api/users/alice/feed", token) == 200
    assert status("/api/users/bob/feed", token) == 403
    assert status("/api/users/bob/feed", None) == 401
    assert status("/api/users/alice/feed", token[:-2] + "xx") == 401
    expired = signer.mint("alice", time.time() - 120)
    assert status("/api/users/alice/feed", expired) == 401
    as_bob = json.dumps({"user_id": "bob", "text": "Where is my order?"}).encode()
    assert post_json(guide.url + "/ask", as_bob, {"Authorization": f"Bearer {token}"})[0] == 403
    tap = json.dumps({"item_id": "shoes-1", "action": "buy"}).encode()
    assert post_json(guide.url + "/api/actions", tap)[0] == 401


def test_the_page_reconnects_when_the_guide_restarts(shop, browser):
    _, guide = shop
    shopper = Shopper(browser, guide, "page-shopper-4")
    shopper.tap_item("hats-0")
    shopper.page.get_by_test_id("back").click()
    shopper.page.get_by_test_id("card").first.wait_for(timeout=10_000)
    status = shopper.page.get_by_test_id("status")
    guide.stop()
    expect(status).to_have_attribute("data-state", "reconnecting", timeout=5_000)
    guide.start()
    guide.wait_ready()
    expect(status).to_have_attribute("data-state", "live", timeout=15_000)
    before = shopper.feed_ids()
    for n in range(1, 5):
        shopper.page.evaluate(
            f"""() => fetch('/api/actions', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
                      body: JSON.stringify({{item_id: 'kitchen-{n}', action: 'cart'}})}})"""
        )
    shopper.page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=card]')].some(c => c.dataset.category === 'kitchen')",
        timeout=10_000,
    )
    assert shopper.feed_ids() != before
    shopper.close()


def test_a_stream_resumed_with_the_last_event_id_waits_for_something_new(shop):
    _, guide = shop
    user = "page-shopper-1"  # has recommendations: the first test's shopper
    token = SessionSigner(guide.settings.guide_secret.encode(), 60).mint(user, time.time())

    def first_event_id(last: str | None) -> str | None:
        """The id of the first event the stream sends within 2 s, or None."""
        conn = http.client.HTTPConnection("127.0.0.1", guide.port, timeout=2)
        headers = {"Authorization": f"Bearer {token}", **({"Last-Event-ID": last} if last else {})}
        conn.request("GET", f"/api/users/{user}/feed", headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        try:
            while line := response.fp.readline():
                if line.startswith(b"id: "):
                    return line[4:].decode().strip()
        except TimeoutError:
            return None
        finally:
            conn.close()
        return None

    latest = first_event_id(None)
    assert latest is not None
    assert first_event_id(latest) is None  # seen already: nothing until the next recommendation
    assert first_event_id("1.0") == latest  # an older one: the latest at once
