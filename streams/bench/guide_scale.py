"""``shopguide bench --only guide``: ``/ask`` through the guide service at shop scale, beside a worker.

On fresh topics it publishes a shop of ``items`` items and ``sentences`` review sentences (the
guide's demo catalog and its reviews, then items made from the demo items under new ids and
reviews made of the demo reviews' sentences, in one language each, rated as shops see it), starts a
worker and a guide, waits until the guide has indexed everything and the worker's sentiment labels
have reached it, then measures, interleaved question by question:

* ``/ask`` over HTTP, client-side, on one kept-alive connection as a shop's backend calls the API
  (the figure the goals judge), and on a new connection per question; the guide's CPU per question;
* the library alone: the same question on a copy of the guide's index opened in this process;
* the encoder alone: embedding the question, the floor of any answer that uses it.

Questions are the gold questions in turn: about their own item, about a random shop item, without
an item (a search over the whole catalog). Then how long a new review takes to become answerable,
and the index's size per sentence (in its store, and in memory once loaded).
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import psutil

from streams.bench.measure import Metrics, percentiles, sample_process
from streams.bench.page import time_to_answerable
from streams.settings import Settings
from streams.tools.broker import free_port
from streams.tools.cluster import GuideProcess, WorkerProcess, post_json
from streams.tools.producer import EventProducer
from streams.topics import Topics

SEED = 0
#: Ratings of the shop's reviews, 5 to 1 stars: mostly happy, as review sites report.
RATING_WEIGHTS = (55, 20, 10, 5, 10)
KINDS = ("own_item", "shop_item", "no_item")


def _gold(name: str) -> dict[str, Any]:
    text = resources.files("guide").joinpath("gold", f"{name}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def build_shop(items: int, sentences: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Item events and review events: the demo catalog, then synthetic ones up to the sizes asked."""
    from guide.text import detect_lang, split_sentences

    catalog = _gold("catalog")
    rng = random.Random(SEED)
    out_items = [dict(i) for i in catalog["items"]]
    for n in range(items - len(out_items)):
        base = catalog["items"][n % len(catalog["items"])]
        out_items.append({**base, "item_id": f"s-{n:05d}", "title": f"{base['title']} {n}"})
    out_reviews = [dict(r) for r in catalog["reviews"]]
    total = sum(len(split_sentences(r["text"])) for r in out_reviews)
    pools: dict[str, list[str]] = {"zh": [], "en": []}
    for r in catalog["reviews"]:
        for s in split_sentences(r["text"]):
            pools[detect_lang(s)].append(s)
    synthetic = [i["item_id"] for i in out_items[len(catalog["items"]) :]] or [out_items[0]["item_id"]]
    k = 0
    while total < sentences:
        lang = rng.choice(("zh", "en"))
        parts = [rng.choice(pools[lang]) for _ in range(rng.randint(1, 4))]
        text = ("" if lang == "zh" else " ").join(parts)
        got = len(split_sentences(text))
        out_reviews.append(
            {
                "event_id": f"s-r-{k}",
                "user_id": f"s-u-{k % 5000}",
                "item_id": synthetic[k % len(synthetic)],
                "text": text,
                "rating": rng.choices((5, 4, 3, 2, 1), RATING_WEIGHTS)[0],
                "ts": 1_795_800_000.0 + k,
            }
        )
        total += got
        k += 1
    return out_items, out_reviews


def run_guide_bench(
    settings: Settings, work: Path, *, items: int, sentences: int, questions: int = 600, reviews: int = 20
) -> dict[str, Any]:
    topics = Topics(settings)
    shop_items, shop_reviews = build_shop(items, sentences)
    results: dict[str, Any] = {"items": len(shop_items), "reviews": len(shop_reviews)}
    with EventProducer(settings) as producer:
        for item in shop_items:
            producer.send(topics.items, item["item_id"].encode(), json.dumps(item, ensure_ascii=False).encode())
        for review in shop_reviews:
            producer.send(topics.reviews, review["user_id"].encode(), json.dumps(review, ensure_ascii=False).encode())
    worker = WorkerProcess(settings, work / "guide-worker.log").start()
    guide = GuideProcess(settings.with_(data_dir=work / "guide-bench", guide_port=free_port()), work / "guide.log")
    try:
        worker.wait_ready(300)
        started = time.monotonic()
        guide.start().wait_ready(3600)
        results["index_build_s"] = round(time.monotonic() - started, 1)
        results["labels_settled_s"] = _labels_settled(worker, guide, topics, len(shop_reviews))
        copy = work / "guide-library-index"
        shutil.copytree(guide.settings.data_dir / "knowledge", copy)
        results |= _ask(guide, copy, shop_items, questions)
        results["review_answerable_s"] = time_to_answerable(settings, topics, guide, reviews)
        assert guide.proc is not None
        results["guide_rss_mb"] = round(sample_process(guide.proc.pid).rss_mb, 1)
    finally:
        guide.stop()
        worker.stop()
    return results


def _labels_settled(worker: WorkerProcess, guide: GuideProcess, topics: Topics, reviews: int) -> float:
    """Seconds until the worker has labelled every review and the guide's count of labels stops
    moving (the labels flow to the guide while it indexes), so that the questions run on a quiet
    shop; at most 15 minutes."""
    started = time.monotonic()
    last, still_since = -1.0, time.monotonic()
    while time.monotonic() - started < 900:
        labelled = Metrics.scrape(worker.url).processed(topics.reviews)
        taken = Metrics.scrape(guide.url).value("shopguide_guide_ingested_total", topic="sentiment")
        if taken != last:
            last, still_since = taken, time.monotonic()
        if labelled >= reviews and time.monotonic() - still_since > 5:
            break
        time.sleep(1.0)
    return round(time.monotonic() - started, 1)


class _KeptConnection:
    """POSTs to one server over one kept-alive HTTP/1.1 connection, with the server's API token."""

    def __init__(self, guide: GuideProcess) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", guide.port, timeout=10.0)
        self._headers = {"Content-Type": "application/json"}
        if guide.token:
            self._headers["Authorization"] = f"Bearer {guide.token}"

    def post(self, path: str, body: bytes) -> int:
        self._conn.request("POST", path, body, self._headers)
        response = self._conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self._conn.close()


def _ask(guide: GuideProcess, copy: Path, shop_items: list[dict[str, Any]], n: int) -> dict[str, Any]:
    from guide.encoder import Encoder
    from guide.knowledge import KnowledgeBase, single_threaded_blas

    single_threaded_blas()  # as in the guide, for a like-for-like reference
    me = psutil.Process()
    rss_before = me.memory_info().rss
    bare = KnowledgeBase.open(str(copy), use_encoder=False)  # the index alone, without the model's weights
    loaded_rss = me.memory_info().rss - rss_before
    stats = bare.stats()
    bare.close()
    del bare
    kb = KnowledgeBase.open(str(copy))
    encoder = Encoder()
    gold = _gold("questions")["questions"]
    rng = random.Random(SEED)
    ids = [i["item_id"] for i in shop_items]
    times: dict[str, dict[str, list[float]]] = {
        k: {"http": [], "http_new_connection": [], "library": [], "encoder": []} for k in KINDS
    }
    kept = _KeptConnection(guide)
    library_cpu: list[float] = []
    warm = 20
    assert guide.proc is not None
    cpu_start = 0.0
    try:
        for k in range(warm + n):
            if k == warm:
                cpu_start = sample_process(guide.proc.pid).cpu_s
            q = gold[(k // len(KINDS)) % len(gold)]
            kind = KINDS[k % len(KINDS)]
            item_id = {"own_item": q.get("item_id"), "shop_item": rng.choice(ids), "no_item": None}[kind]
            body = json.dumps({"user_id": f"bench-{k % 50}", "text": q["text"], "item_id": item_id})
            t0 = time.perf_counter()
            status = kept.post("/ask", body.encode())
            http = time.perf_counter() - t0
            t0 = time.perf_counter()
            status_new, _ = post_json(guide.url + "/ask", body.encode())
            http_new = time.perf_counter() - t0
            if status != 200 or status_new != 200:
                raise RuntimeError(f"/ask answered {status} and {status_new}")
            t0, c0 = time.perf_counter(), time.thread_time()
            kb.ask(q["text"], item_id=item_id)
            library, cpu = time.perf_counter() - t0, time.thread_time() - c0
            t0 = time.perf_counter()
            encoder.encode([q["text"]])
            alone = time.perf_counter() - t0
            if k >= warm:  # the first ones warm the caches up
                pairs = (("http", http), ("http_new_connection", http_new), ("library", library), ("encoder", alone))
                for name, seconds in pairs:
                    times[kind][name].append(1000 * seconds)
                library_cpu.append(1000 * cpu)
        guide_cpu_ms = 1000 * (sample_process(guide.proc.pid).cpu_s - cpu_start) / (2 * n)
    finally:
        kept.close()
        kb.close()

    def overall(name: str) -> dict[str, Any]:
        return percentiles(v for kind in KINDS for v in times[kind][name])

    return {
        "sentences": stats["sentences"],
        "index_bytes_per_sentence": stats["bytes_per_sentence"],
        "index_loaded_rss_bytes_per_sentence": round(loaded_rss / max(1, stats["sentences"]), 1),
        "ask_ms": overall("http"),
        "ask_ms_by_kind": {kind: percentiles(times[kind]["http"]) for kind in KINDS},
        "ask_new_connection_ms": overall("http_new_connection"),
        "library_ms": overall("library"),
        "library_cpu_ms": percentiles(library_cpu),
        "encoder_ms": overall("encoder"),
        "guide_cpu_ms_per_ask": round(guide_cpu_ms, 2),
        "load_average_1m": round(psutil.getloadavg()[0], 2),
    }
