"""The output contracts: recommendation, sentiment (and alert) and dead-letter messages.

Plain functions from engine results to the JSON bytes the shop's services read; the README shows an
example of each. Kept apart from the agents so that the wire format is tested directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from state.item import SentimentFigures
from state.user import PublishedRecommendation
from streams.events import compact_json


def recommendation_fields(
    user_id: str, rec: PublishedRecommendation, number: Callable[[float], object] = float
) -> dict[str, Any]:
    """A recommendation as the topic and ``GET /recommendations/{user_id}`` both show it; inside an
    experiment with its ``rec_id``, ``experiment`` and ``arm`` (outside one, without them). Its
    floats as ``number`` makes them."""
    fields = {
        "user_id": user_id,
        "items": [
            {"item_id": i, "score": number(round(s, 6)), "reasons": rec.reasons[n] if n < len(rec.reasons) else []}
            for n, (i, s) in enumerate(rec.items)
        ],
        "interests": [{"category": c, "weight": number(round(w, 6))} for c, w in rec.interests],
        "model_version": rec.model_version,
        "trigger_event_id": rec.trigger_event_id,
        "event_ts": number(rec.event_ts),
        "published_ts": number(rec.published_ts),
    }
    if rec.arm:
        fields |= {"rec_id": rec.rec_id, "experiment": rec.experiment, "arm": rec.arm}
    return fields


def shadow(user_id: str, rec: PublishedRecommendation) -> bytes:
    """A shadow arm's recommendation: what it would have shown, never shown."""
    return compact_json(
        {
            "user_id": user_id,
            "rec_id": rec.rec_id,
            "experiment": rec.experiment,
            "arm": rec.arm,
            "items": [
                {"item_id": i, "score": round(s, 6), "reasons": rec.reasons[n] if n < len(rec.reasons) else []}
                for n, (i, s) in enumerate(rec.items)
            ],
            "model_version": rec.model_version,
            "trigger_event_id": rec.trigger_event_id,
            "published_ts": rec.published_ts,
        }
    )


#: msgspec writes the same bytes as :func:`compact_json` (strings escaped alike, UTF-8, dicts in
#: order, integers) but for floats that ``json`` prints with an exponent, NaN and infinities:
#: :func:`_json_float` hands those over as ``json`` prints them.
_ENCODER = msgspec.json.Encoder()


def _json_float(value: float) -> float | msgspec.Raw:
    """``value`` for :data:`_ENCODER`: itself where msgspec prints it as ``json`` does (zero and
    magnitudes in [1e-4, 1e16), Python's positional range), else ``json``'s text of it."""
    if 1e-4 <= abs(value) < 1e16 or value == 0.0:
        return value
    return msgspec.Raw(compact_json(value))


def recommendation(user_id: str, rec: PublishedRecommendation) -> bytes:
    """:func:`compact_json` of :func:`recommendation_fields`, byte for byte."""
    return _ENCODER.encode(recommendation_fields(user_id, rec, _json_float))


def sentiment(
    *,
    event_id: str,
    user_id: str,
    item_id: str,
    score: float,
    positive: bool,
    figures: SentimentFigures,
    model_version: int,
    event_ts: float,
    published_ts: float,
) -> bytes:
    return compact_json(
        {
            "event_id": event_id,
            "user_id": user_id,
            "item_id": item_id,
            "label": "positive" if positive else "negative",
            "score": round(score, 6),
            "item_positive_ratio": round(figures.positive_ratio, 6),
            "item_reviews": figures.reviews,
            "model_version": model_version,
            "event_ts": event_ts,
            "published_ts": published_ts,
        }
    )


def sentiment_alert(
    *,
    item_id: str,
    trigger_event_id: str,
    figures: SentimentFigures,
    threshold: float,
    model_version: int,
    published_ts: float,
) -> bytes:
    return compact_json(
        {
            "event_id": f"alert:{trigger_event_id}",
            "item_id": item_id,
            "label": "alert",
            "recent_negative_ratio": round(figures.recent_negative_ratio, 6),
            "recent_reviews": figures.recent_reviews,
            "baseline_negative_ratio": round(figures.baseline_negative_ratio, 6),
            "threshold": threshold,
            "item_positive_ratio": round(figures.positive_ratio, 6),
            "item_reviews": figures.reviews,
            "aspects": dict(figures.recent_aspects),
            "trigger_event_id": trigger_event_id,
            "model_version": model_version,
            "published_ts": published_ts,
        }
    )


def dead_letter(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    reason: str,
    error: str,
    payload: bytes | None,
    ts: float,
    payload_max: int,
) -> bytes:
    """The original bytes travel as text (invalid UTF-8 escaped), cut to ``payload_max`` bytes
    (``SHOPGUIDE_DEADLETTER_PAYLOAD_BYTES``): enough to tell what was wrong, little personal data,
    and a flood of huge payloads cannot flood the dead-letter topic too."""
    raw = payload or b""
    return compact_json(
        {
            "source_topic": source_topic,
            "partition": partition,
            "offset": offset,
            "reason": reason,
            "error": error,
            "payload": raw[:payload_max].decode("utf-8", errors="backslashreplace"),
            "payload_bytes": len(raw),
            "truncated": len(raw) > payload_max,
            "ts": ts,
        }
    )
