"""``shopguide demo``: the whole engine on this machine in one command.

Unless ``SHOPGUIDE_BROKER`` is set it starts the embedded broker on a free port; then it creates
the topics, starts a worker, replays the generated sample shop (catalog, clicks, reviews in Chinese
and English, and three broken messages), prints recommendations and sentiment as they arrive,
stops everything (guide, then worker, then broker) and ends with one summary line.

Beside the worker runs the shopping guide (``shopguide guide``), fed the guide's demo catalog too:
the demo asks it a few questions in Chinese and English, prints each answer with its quoted
evidence, and prints the shopper's page URL; with ``--serve`` it keeps everything running until
Ctrl-C.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from rich.console import Console

from streams.events import Click, Review
from streams.settings import Settings
from streams.tools.broker import EmbeddedBroker, free_port
from streams.tools.cluster import GuideProcess, WorkerProcess, post_json
from streams.tools.producer import EventProducer
from streams.tools.replay import Pacer, stamp
from streams.tools.sample import generate
from streams.tools.tail import messages
from streams.topics import Topics, create_topics

console = Console(highlight=False)


class _Watcher:
    """Reads the output topics in the background, counting and printing a readable sample."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.counts: Counter[str] = Counter()
        self.triggers: set[str] = set()  # clicks a recommendation answered
        self._settings = settings
        self._names = {
            topics.recommendations: "recommendation",
            topics.sentiment: "sentiment",
            topics.deadletter: "deadletter",
        }
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, args=(t,), daemon=True) for t in self._names]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def _watch(self, topic: str) -> None:
        kind = self._names[topic]
        for _, _, _, value in messages(self._settings, topic, True, None, self._stop):
            self.counts[kind] += 1
            message = json.loads(value or b"{}")
            if kind == "recommendation":
                self.triggers.add(message["trigger_event_id"])
            self._show(kind, message, self.counts[kind])

    @staticmethod
    def _show(kind: str, m: dict[str, object], n: int) -> None:
        if kind == "recommendation" and (n <= 5 or n % 100 == 0):
            items = ", ".join(str(i["item_id"]) for i in m["items"][:5])  # type: ignore[index]
            interests = ", ".join(f"{i['category']} {i['weight']:.2f}" for i in m["interests"][:3])  # type: ignore[index]
            lag = (float(m["published_ts"]) - float(m["event_ts"])) * 1000  # type: ignore[arg-type]
            console.print(f"[cyan]rec #{n}[/] {m['user_id']}: {items} … | interests: {interests} | {lag:.1f} ms")
        elif kind == "sentiment" and m.get("label") == "alert":
            console.print(
                f"[red]ALERT[/] {m['item_id']}: {m['recent_negative_ratio']:.0%} of the last "
                f"{m['recent_reviews']} reviews negative; complaints: "
                + (", ".join(f"{a} {c}" for a, c in m.get("aspects", {}).items()) or "-")  # type: ignore[attr-defined]
            )
        elif kind == "sentiment" and (n <= 5 or n % 25 == 0):
            console.print(
                f"[green]sentiment #{n}[/] {m['item_id']}: {m['label']} ({m['score']:.2f}), "
                f"item {m['item_positive_ratio']:.0%} positive of {m['item_reviews']}"
            )
        elif kind == "deadletter":
            console.print(f"[yellow]dead-letter[/] {m['source_topic']}: {m['error']}")


#: (item, question, language) the demo asks the guide; the items are the guide's demo catalog's.
QUESTIONS = (
    ("g-earbuds", "How long does the battery last?", "en"),
    ("g-earbuds", "降噪效果怎么样", "zh"),
    ("g-shoes", "鞋码偏小吗", "zh"),
    ("g-shoes", "Are they comfortable for long runs?", "en"),
    (None, "How long does shipping take?", "en"),
    (None, "我要转人工", "zh"),
)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _ask_guide(guide: GuideProcess, user_id: str) -> None:
    """Ask the demo questions, once the first one is answered from its item's reviews (they are indexed)."""
    deadline = time.monotonic() + 30
    for n, (item_id, text, lang) in enumerate(QUESTIONS):
        body = {"user_id": user_id, "text": text, "lang": lang, **({"item_id": item_id} if item_id else {})}
        while True:
            status, answer = post_json(guide.url + "/ask", json.dumps(body, ensure_ascii=False).encode())
            quoted = status == 200 and any(e.get("item_id") == item_id for e in answer["evidence"])
            if n > 0 or quoted or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if status != 200:
            console.print(f"[red]ask[/] {text}: HTTP {status} {answer}")
            continue
        flag = " [yellow](hand-off)[/]" if answer["handoff"] else ""
        console.print(f"[bold magenta]Q[/] ({item_id or 'shop'}) {text}\n[bold magenta]A[/] {answer['answer']}{flag}")
        for e in answer["evidence"][:3]:
            console.print(f"   [dim]“{e['text']}” ({e.get('sentiment') or e['lang']}, {e['event_id']})[/]")


def _publish_guide_catalog(producer: EventProducer, topics: Topics) -> None:
    catalog = json.loads(resources.files("guide").joinpath("gold", "catalog.json").read_text(encoding="utf-8"))
    for item in catalog["items"]:
        producer.send(topics.items, item["item_id"].encode(), json.dumps(item, ensure_ascii=False).encode())
    for review in catalog["reviews"]:
        review = {**review, "ts": time.time()}
        producer.send(topics.reviews, review["user_id"].encode(), json.dumps(review, ensure_ascii=False).encode())


def run_demo(settings: Settings, events: int, rate: float = 400.0, serve: bool = False) -> int:
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="shopguide-demo-"))
        if "SHOPGUIDE_BROKER" not in os.environ:
            broker = EmbeddedBroker(log_path=work / "broker.log").start()
            stack.callback(broker.stop)
            settings = settings.with_(broker=broker.address, guide_demo_login=True)
            console.print(f"embedded broker (Tansu) on {broker.address}")
        else:
            # A shared broker keeps old topics: use fresh ones so the counts are this run's.
            run = uuid.uuid4().hex[:8]
            settings = settings.with_(topic_prefix=f"shopguide-demo-{run}.", app_id=f"shopguide-demo-{run}")
            console.print(f"broker {settings.broker}, topics {settings.topic_prefix}*")
        token_generated = not settings.api_tokens
        # The compiled kernels outlive the run's data: only the first demo compiles them.
        kernels = settings.kernel_cache_dir or str(settings.data_dir.resolve() / "numba-cache")
        settings = settings.with_generated_secrets().with_(
            data_dir=work / "worker", web_port=free_port(), kernel_cache_dir=kernels
        )
        topics = Topics(settings)
        create_topics(settings)
        worker = WorkerProcess(settings).start()
        stack.callback(worker.stop)
        console.print(f"worker starting (log: {worker.log_path}) …")
        worker.wait_ready()
        console.print(f"worker ready on {worker.url}")
        if token_generated:
            console.print(
                f"API token for this run: curl -H 'Authorization: Bearer {worker.token}' "
                f"{worker.url}/recommendations/user-001",
                soft_wrap=True,  # one line to copy
            )
        guide_port = settings.guide_port if _port_free(settings.guide_port) else free_port()
        guide = GuideProcess(settings.with_(data_dir=work / "guide", guide_port=guide_port)).start()
        stack.callback(guide.stop)
        console.print(f"guide starting (log: {guide.log_path}) …")
        guide.wait_ready()
        watcher = _Watcher(settings, topics)
        watcher.start()
        stack.callback(watcher.stop)

        sample = generate(events)
        with EventProducer(settings) as producer:
            for item in sample.items:
                producer.send(topics.items, item.item_id.encode(), item.to_json())
            _publish_guide_catalog(producer, topics)
            producer.flush()
            # Interleave clicks and reviews in time order, broken messages among them.
            stream: list[Click | Review] = sorted([*sample.clicks, *sample.reviews], key=lambda e: e.ts)
            bad_at = {len(stream) * (i + 1) // (len(sample.invalid) + 1): bad for i, bad in enumerate(sample.invalid)}
            pacer = Pacer(rate)
            for n, event in enumerate(stream):
                if n in bad_at:
                    bad_kind, payload = bad_at[n]
                    producer.send(getattr(topics, bad_kind), None, payload)
                live = stamp(event, time.time())
                topic = topics.clicks if isinstance(live, Click) else topics.reviews
                producer.send(topic, live.user_id.encode(), live.to_json())  # type: ignore[union-attr]
                pacer.wait()
        # Every shopper's latest click is answered; earlier ones may share an answer when the
        # worker runs behind (SHOPGUIDE_COALESCE_AFTER_MS).
        latest = {click.user_id: click.event_id for click in sorted(sample.clicks, key=lambda c: c.ts)}
        expected = Counter(sentiment=len(sample.reviews), deadletter=len(sample.invalid))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            any(watcher.counts[k] < v for k, v in expected.items()) or not set(latest.values()) <= watcher.triggers
        ):
            time.sleep(0.2)
        time.sleep(0.5)  # alerts come right after their review's sentiment
        shopper = sample.clicks[-1].user_id
        _ask_guide(guide, shopper)
        login = "/?user=" + shopper if guide.settings.guide_demo_login else " (sign in with `shopguide token USER_ID`)"
        console.print(f"the shopper's page: [bold]{guide.url}{login}[/]")
        if serve:
            console.print("serving until Ctrl-C …")
            try:
                while worker.alive and guide.alive:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                pass
        console.print("stopping the guide, the worker, then the broker …")
    c = watcher.counts
    answered = len(set(latest.values()) & watcher.triggers)
    print(
        f"demo: {events} events, {c['recommendation']} recommendations (latest click of {answered} of "
        f"{len(latest)} shoppers answered), {c['sentiment']} sentiment signals, {c['deadletter']} dead-lettered"
    )
    return 0 if c["recommendation"] and c["sentiment"] else 1
