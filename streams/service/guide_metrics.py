"""The guide's Prometheus registry (``/metrics`` of ``shopguide guide``), every name ``shopguide_guide_*``.

Labels have small fixed value sets (channels, intents, outcomes, reasons, topics, actions): never a
user, item or question.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ASK_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class GuideMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.questions = Counter(
            "shopguide_guide_questions_total",
            "Questions answered, by channel (http, kafka), intent and outcome (answered, handoff)",
            ["channel", "intent", "outcome"],
            registry=r,
        )
        self.invalid = Counter(
            "shopguide_guide_invalid_questions_total",
            "Questions refused (HTTP 400 or dead-lettered), by channel and reason",
            ["channel", "reason"],
            registry=r,
        )
        self.ask_seconds = Histogram(
            "shopguide_guide_ask_seconds", "Time to answer one question", buckets=ASK_BUCKETS, registry=r
        )
        self.encoder_available = Gauge(
            "shopguide_guide_encoder_available",
            "1 when the sentence encoder is loaded; 0 means the guide answers from BM25 alone (fallback)",
            registry=r,
        )
        self.ingested = Counter(
            "shopguide_guide_ingested_total",
            "Messages the guide took into its index, by topic and outcome (indexed, invalid)",
            ["topic", "outcome"],
            registry=r,
        )
        self.embedded = Counter(
            "shopguide_guide_embedded_sentences_total", "Review sentences embedded into the index", registry=r
        )
        self.drafts = Counter(
            "shopguide_guide_reply_drafts_total", "Reply drafts published for negative reviews", registry=r
        )
        self.actions = Counter(
            "shopguide_guide_page_actions_total",
            "Shopper actions from the page published as clicks",
            ["action"],
            registry=r,
        )
        self.streams = Gauge("shopguide_guide_feed_streams", "Open page streams (server-sent events)", registry=r)
        self.sentences = Gauge("shopguide_guide_indexed_sentences", "Review sentences in the index", registry=r)
