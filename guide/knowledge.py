"""The shopping guide's knowledge base: the catalog, review sentences and shop policy, and answers from them.

``KnowledgeBase`` indexes item events and review events as they stream in (each review split into
sentences, embedded once, the newest ``max_sentences_per_item`` kept per item) and answers a
shopper's question with quoted evidence only: review sentences, catalog fields and policy entries,
framed by fixed templates in the question's language. Nothing is generated.

Retrieval is hybrid: BM25 within a language, the multilingual encoder across languages, combined by
the shipped ranker (``guide.ranker``) into a probability that a candidate answers. Policy entries
are ranked by their keywords, the encoder and the question's intent.

Persistence: with a path, everything (items, sentences with their int8 embeddings, sentiment
labels, the policy's embeddings, the marks that make review delivery idempotent) lives in one
RocksDB (rocksdict) and is loaded back on open, so a restart re-embeds nothing. In memory, each
review's sentences are packed into a few buffers (``_Sentences``), equal catalog field texts share
one vector, and BM25 tokens are not held: they are recomputed for the items a question needs, whose
candidates are cached for the ``CACHED_ITEMS`` items used last.

Threading: not thread-safe by design. The service calls every method from one worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from guide import text as textlib
from guide.aspects import aspects_of
from guide.encoder import DIM, Encoder, dequantize, quantize
from guide.intent import detect_intent
from guide.policy import PolicyEntry, load_policy
from guide.ranker import ALL_FEATURES, Candidate, CandidateSet, Ranker, load_rankers
from guide.replies import ReplyDraft, write_reply

log = logging.getLogger(__name__)

#: Below this confidence the guide hands the question to a person: the lowest threshold that
#: hands off 80% of the gold set's unanswerable questions (``shopguide evaluate ask`` reports it,
#: and a threshold calibrated on one half of the questions applied to the other).
HANDOFF_BELOW = 0.59
#: The same for an answer from the policy, whose entries are scored apart (``_rank_policy``); a
#: question about shipping, returns, payment or an order goes to the policy when its best entry
#: reaches this.
POLICY_FLOOR = 0.5
#: Evidence quoted (and reviews counted for the stance) with the best one must reach this share of
#: its score and this floor.
QUOTE_SHARE = 0.6
QUOTE_FLOOR = 0.4
MAX_QUOTES = 3
#: Without an item id, the reviews of this many best-matching items are searched.
ITEMS_SEARCHED = 3
#: Items whose candidates (tokens, float32 vectors, evidence) are kept between questions; the
#: rest are rebuilt from the packed index when asked about.
CACHED_ITEMS = 256
POLICY_INTENTS = frozenset({"shipping", "returns", "payment", "order_status"})
MAX_QUESTION_CHARS = 1000
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 256
_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")

_ITEM, _REVIEW, _MARK, _SENTIMENT, _POLICY_VEC = b"i", b"r", b"m", b"s", b"p"

_TEMPLATES = {
    "en": {
        "stance": '{pos} of {n} reviews that mention "{topic}" are positive.',
        "stance_generic": "{pos} of {n} reviews that speak to this are positive.",
        "reviews": "Shoppers say: {quotes}",
        "catalog": "Product details: {quotes}",
        "policy": "Our policy: {quotes}",
        "handoff": "I could not find a reliable answer to this; a colleague from customer service will reply.",
        "human": "I am passing you to a colleague from customer service.",
        "quote": '"{text}"',
    },
    "zh": {
        "stance": "提到“{topic}”的{n}条评论中有{pos}条是正面的。",
        "stance_generic": "相关的{n}条评论中有{pos}条是正面的。",
        "reviews": "买家评价：{quotes}",
        "catalog": "商品信息：{quotes}",
        "policy": "本店政策：{quotes}",
        "handoff": "这个问题我没有找到可靠的答案，稍后会有客服同事为您解答。",
        "human": "正在为您转接人工客服。",
        "quote": "“{text}”",
    },
}


@dataclass(frozen=True)
class Evidence:
    """One quoted piece of evidence: a review sentence, a catalog field or a policy entry."""

    text: str
    item_id: str | None
    event_id: str
    lang: str
    sentiment: str | None
    ts: float | None
    score: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """The guide's answer to one question; ``handoff`` asks for a person."""

    intent: str
    lang: str
    answer: str
    evidence: list[Evidence]
    confidence: float
    handoff: bool

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": [e.to_json() for e in self.evidence]}


class _Sentences:
    """A review's sentences in four buffers instead of an object each: the texts as one string with
    their end offsets, the int8 vectors and their float32 scales as bytes (512 + 4 a sentence).

    Neither BM25 tokens nor languages are kept: both are functions of the text, and
    ``_build_candidates`` recomputes them when a question needs the item and it is not cached;
    held as Python lists, the tokens took more memory than all the rest (docs/guide-service.md).
    """

    __slots__ = ("_ends", "_q", "_scales", "_text")

    def __init__(self, texts: list[str], q: bytes | None, scales: bytes) -> None:
        self._text = "".join(texts)
        self._ends = array("I", accumulate(len(t) for t in texts)).tobytes()
        self._q = q
        self._scales = scales

    @classmethod
    def of(cls, rows: list[tuple[str, bytes | None, float]]) -> _Sentences:
        """From (text, int8 vector bytes or None, scale) rows; no vectors unless every row has one."""
        raws = [raw for _, raw, _ in rows]
        q = b"".join(raw for raw in raws if raw is not None) if rows and None not in raws else None
        return cls([t for t, _, _ in rows], q, array("f", [scale for *_, scale in rows]).tobytes())

    def __len__(self) -> int:
        return len(self._ends) // 4

    def text(self, k: int) -> str:
        ends = memoryview(self._ends).cast("I")
        return self._text[ends[k - 1] if k else 0 : ends[k]]

    def vector(self, k: int) -> np.ndarray:
        """The row's float32 vector; zeros when it was indexed without the encoder."""
        q = None if self._q is None else np.frombuffer(self._q, dtype=np.int8, count=DIM, offset=k * DIM)
        return _vector(q, float(memoryview(self._scales).cast("f")[k]))

    def with_vectors(self, q: np.ndarray, scales: np.ndarray) -> _Sentences:
        """The same texts with the int8 rows and scales of ``quantize``."""
        return _Sentences.of([(self.text(k), q[k].tobytes(), float(scales[k])) for k in range(len(self))])

    def tail(self, drop: int) -> _Sentences:
        """The rows after the first ``drop``."""
        return _Sentences.of(self.rows(drop))

    def rows(self, start: int = 0) -> list[tuple[str, bytes | None, float]]:
        scales = memoryview(self._scales).cast("f")
        return [
            (self.text(k), None if self._q is None else self._q[k * DIM : (k + 1) * DIM], float(scales[k]))
            for k in range(start, len(self))
        ]


class _SharedVectors:
    """Catalog field vectors by text, held once however many items share the text ("in stock", a
    category, a common attribute), with a count of users so that one no item uses is dropped.

    A text already held is not embedded again: every item quoting it scores it with the same vector.
    """

    def __init__(self) -> None:
        self._held: dict[str, list[Any]] = {}  # text -> [int8 row + float32 scale, users]

    def get(self, text: str) -> bytes | None:
        entry = self._held.get(text)
        return None if entry is None else bytes(entry[0])

    def acquire(self, text: str, raw: bytes) -> bytes:
        """The vector held for ``text`` (``raw`` when it is the first), counted as used once more."""
        entry = self._held.setdefault(text, [raw, 0])
        entry[1] += 1
        return bytes(entry[0])

    def release(self, text: str) -> None:
        entry = self._held[text]
        entry[1] -= 1
        if entry[1] == 0:
            del self._held[text]


class _CatalogFields:
    """An item's catalog fields as sentences: names, texts and (shared) vectors, one tuple each."""

    __slots__ = ("names", "texts", "vectors")

    def __init__(self, names: tuple[str, ...], texts: tuple[str, ...], vectors: tuple[bytes | None, ...]) -> None:
        self.names = names
        self.texts = texts
        self.vectors = vectors  # int8 row + float32 scale, or None without the encoder

    def vector(self, k: int) -> np.ndarray:
        """The field's float32 vector; zeros when it was indexed without the encoder."""
        raw = self.vectors[k]
        return _vector(None if raw is None else np.frombuffer(raw, dtype=np.int8, count=DIM), _scale_of(raw))

    def title(self) -> np.ndarray | None:
        return self.vector(self.names.index("title")) if "title" in self.names else None

    def rows(self) -> list[list[Any]]:
        """As stored: name, text, language, int8 vector bytes or None, scale."""
        return [
            [n, t, textlib.detect_lang(t), None if v is None else v[:DIM], _scale_of(v)]
            for n, t, v in zip(self.names, self.texts, self.vectors, strict=True)
        ]


@dataclass(slots=True)
class _Review:
    item_id: str
    event_id: str
    ts: float
    rating: float | None
    first: int  # the index of the first kept sentence in the review
    sentences: _Sentences
    sentiment: str | None = None  # the engine's label, when it came

    def record(self) -> bytes:
        rows = self.sentences.rows()
        return msgpack.packb(
            {
                "ts": self.ts,
                "rating": self.rating,
                "s": [[self.first + k, t, textlib.detect_lang(t), q, scale] for k, (t, q, scale) in enumerate(rows)],
            }
        )


@dataclass
class _ItemView:
    """Everything the guide knows of one item: its event, catalog fields (as sentences) and reviews."""

    item: dict[str, Any] | None = None
    fields: _CatalogFields | None = None
    reviews: dict[str, _Review] | None = None

    def sentence_count(self) -> int:
        return sum(len(r.sentences) for r in (self.reviews or {}).values())


class _Store:
    """Bytes keys to bytes values: a rocksdict RocksDB on disk, or a dict in memory."""

    def __init__(self, path: str | None) -> None:
        self._db: Any
        if path is None:
            self._db = {}
        else:
            from rocksdict import Rdict

            Path(path).mkdir(parents=True, exist_ok=True)
            self._db = Rdict(path)
        #: Keys and values, in bytes: a running total (a size per key would cost memory of its own).
        self.size = 0

    def __contains__(self, key: bytes) -> bool:
        return self._db.get(key) is not None

    def put(self, key: bytes, value: bytes) -> None:
        held = self._db.get(key)
        if held is not None:
            self.size -= len(key) + len(held)
        self._db[key] = value
        self.size += len(key) + len(value)

    def delete(self, key: bytes) -> None:
        held = self._db.get(key)
        if held is not None:
            del self._db[key]
            self.size -= len(key) + len(held)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items():
            self.size += len(key) + len(value)
            yield key, value

    def close(self) -> None:
        if not isinstance(self._db, dict):
            self._db.close()


def single_threaded_blas() -> None:
    """Limit BLAS to one thread for the whole process (call once, before answering).

    The knowledge base answers one question at a time on one thread, and its largest product (the
    catalog's title vectors times the question's, 10,000 x 512) is memory-bound: BLAS threads of
    their own add nothing but contention, which on a busy machine shows in the tail of every answer
    (figures in docs/guide-service.md).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _key(prefix: bytes, *parts: str) -> bytes:
    return prefix + b"\x00".join(p.encode("utf-8") for p in parts)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item event reduced to what the guide keeps; ValueError says what is wrong."""
    if not isinstance(item, Mapping):
        raise ValueError(f"item: expected an object, got {type(item).__name__}")
    item_id = item.get("item_id")
    if not isinstance(item_id, str) or not _ID.match(item_id):
        raise ValueError("item_id: expected 1..128 characters without control characters")
    out: dict[str, Any] = {"item_id": item_id}
    category = item.get("category")
    if not isinstance(category, str) or not category.strip() or len(category) > 128:
        raise ValueError("category: expected a non-empty string of at most 128 characters")
    out["category"] = category
    if item.get("title") is not None:
        if not isinstance(item["title"], str) or len(item["title"]) > 512:
            raise ValueError("title: expected a string of at most 512 characters")
        out["title"] = item["title"]
    if item.get("price") is not None:
        if not _finite(item["price"]) or item["price"] < 0:
            raise ValueError("price: expected a finite number >= 0")
        out["price"] = float(item["price"])
    in_stock = item.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise ValueError("in_stock: expected true or false")
    out["in_stock"] = in_stock
    ts = item.get("ts", 0.0)
    if not _finite(ts):
        raise ValueError("ts: expected a finite number (unix seconds)")
    out["ts"] = float(ts)
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ValueError("attributes: expected an object of string keys")
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"attributes: at most {MAX_ATTRIBUTES} keys, got {len(attributes)}")
    for k, v in attributes.items():
        if not isinstance(k, str) or not k or len(k) > MAX_ATTRIBUTE_KEY:
            raise ValueError(f"attributes: keys are 1..{MAX_ATTRIBUTE_KEY} characters, got {str(k)[:80]!r}")
        if isinstance(v, str):
            if len(v) > MAX_ATTRIBUTE_VALUE:
                raise ValueError(f"attributes[{k!r}]: at most {MAX_ATTRIBUTE_VALUE} characters, got {len(v)}")
        elif not _finite(v):
            raise ValueError(f"attributes[{k!r}]: expected a string or a finite number, got {type(v).__name__}")
    out["attributes"] = dict(attributes)
    return out


def _render_fields(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field name, sentence) for each catalog field worth quoting."""
    fields = []
    if item.get("title"):
        fields.append(("title", str(item["title"])))
    fields.append(("category", f"category: {item['category']}"))
    if item.get("price") is not None:
        fields.append(("price", f"price: {item['price']:g}"))
    fields.append(("in_stock", "in stock" if item.get("in_stock", True) else "out of stock"))
    for k, v in item.get("attributes", {}).items():
        fields.append((k, f"{k.replace('_', ' ')}: {v}"))
    return fields


def _clean_question(text: Any) -> str:
    text = text if isinstance(text, str) else str(text)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text)[:MAX_QUESTION_CHARS]


class _CatalogIndex:
    """Every item's catalog tokens and title vector, updated in place, for questions without an item.

    An inverted index over the tokens and one matrix of title vectors keep a search over all items
    at a few milliseconds, and an item update touches only its own row.
    """

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._postings: dict[str, array[int]] = {}  # token -> rows, as int32 (a set would take 4-8x more)
        self._matrix = np.zeros((0, DIM), dtype=np.float32)

    def put(self, item_id: str, fields: _CatalogFields, replaced: _CatalogFields | None) -> None:
        """Index the item's fields, replacing those it had."""
        row = self._row.get(item_id)
        if row is None:
            row = self._row[item_id] = len(self._ids)
            self._ids.append(item_id)
            if row == len(self._matrix):
                grown = np.zeros((max(16, 2 * row), DIM), dtype=np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
        for tok in _token_set(replaced) if replaced is not None else ():
            self._postings[tok].remove(row)
        for tok in _token_set(fields):
            self._postings.setdefault(sys.intern(tok), array("i")).append(row)
        title = fields.title()
        self._matrix[row] = title if title is not None else 0.0

    def shrink(self) -> None:
        """Drop the title matrix's spare rows (kept for growth while items stream in)."""
        self._matrix = self._matrix[: len(self._ids)].copy()

    def best(self, q_tokens: list[str], q_vector: np.ndarray | None, k: int) -> list[str]:
        """The ``k`` items with the best share of question tokens plus title similarity."""
        n = len(self._ids)
        if n == 0:
            return []
        score = np.zeros(n, dtype=np.float32)
        q_set = set(q_tokens)
        for tok in q_set:
            rows = self._postings.get(tok)
            if rows and len(rows) <= max(1, n // 2):  # a token most items share tells none apart
                score[np.frombuffer(rows, dtype=np.int32)] += 1.0 / len(q_set)
        if q_vector is not None:
            score += self._matrix[:n] @ q_vector
        best = np.argpartition(-score, k - 1)[:k] if n > k else np.arange(n)
        best = best[np.argsort(-score[best], kind="stable")]
        return [self._ids[i] for i in best if score[i] > 0]


class KnowledgeBase:
    """Catalog, review sentences and shop policy, indexed for answering (see the module docstring)."""

    def __init__(
        self,
        store: _Store,
        encoder: Encoder,
        policy: list[PolicyEntry],
        rankers: dict[str, Ranker],
        max_sentences_per_item: int,
    ) -> None:
        self._store = store
        self._encoder = encoder
        self._policy = policy
        self._rankers = rankers
        self._max_sentences = max_sentences_per_item
        self._items: dict[str, _ItemView] = {}
        self._marks: set[str] = set()
        self._sentiment: dict[tuple[str, str], str] = {}  # labels of reviews not indexed (yet)
        self._policy_vectors: dict[str, np.ndarray] = {}
        self._policy_vectors_by_lang: dict[str, list[np.ndarray | None]] = {}  # in policy order, made once
        self._catalog = _CatalogIndex()
        self._shared = _SharedVectors()
        self._cache: dict[str, tuple[list[Evidence], CandidateSet]] = {}  # by item, least recently used first
        self._cross_scale: tuple[float, float] | None = None

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def open(
        cls,
        path: str | None,
        *,
        max_sentences_per_item: int = 200,
        policy_path: str | None = None,
        use_encoder: bool = True,
    ) -> KnowledgeBase:
        """Open (or create) the index at ``path`` (a RocksDB directory; None keeps it in memory)."""
        if max_sentences_per_item < 1:
            raise ValueError("max_sentences_per_item: expected at least 1")
        kb = cls(
            _Store(path),
            Encoder(enabled=use_encoder),
            load_policy(policy_path),
            load_rankers(),
            max_sentences_per_item,
        )
        kb._load()
        kb._embed_policy()
        return kb

    def close(self) -> None:
        """Close the store; the object is unusable afterwards."""
        self._store.close()

    @property
    def encoder_available(self) -> bool:
        return self._encoder.available

    def stats(self) -> dict[str, Any]:
        """Items, indexed sentences, and the bytes the index takes in its store (keys + values)."""
        sentences = sum(v.sentence_count() for v in self._items.values())
        size = self._store.size
        return {
            "items": sum(1 for v in self._items.values() if v.item is not None),
            "sentences": sentences,
            "bytes": size,
            "bytes_per_sentence": round(size / sentences, 1) if sentences else None,
            "encoder_available": self.encoder_available,
        }

    def _view(self, item_id: str) -> _ItemView:
        view = self._items.get(item_id)
        if view is None:
            view = self._items[item_id] = _ItemView()
        return view

    def _load(self) -> None:
        for key, value in self._store.items():
            prefix, rest = key[:1], key[1:].decode("utf-8")
            if prefix == _MARK:
                self._marks.add(sys.intern(rest))
            elif prefix == _SENTIMENT:
                item_id, event_id = rest.split("\x00", 1)
                self._note_sentiment(item_id, event_id, msgpack.unpackb(value)[0])
            elif prefix == _POLICY_VEC:
                self._policy_vectors[rest] = np.frombuffer(value, dtype=np.float32)
            elif prefix == _ITEM:
                rec = msgpack.unpackb(value)
                view = self._view(rest)
                view.item = rec["item"]
                view.fields = self._catalog_fields([(n, t, q, s) for n, t, _, q, s in rec["fields"]])
                self._catalog.put(rest, view.fields, None)
            elif prefix == _REVIEW:
                item_id, event_id = (sys.intern(part) for part in rest.split("\x00", 1))
                rec = msgpack.unpackb(value)
                first = rec["s"][0][0] if rec["s"] else 0
                sentences = _Sentences.of([(t, q, s) for _, t, _, q, s in rec["s"]])
                review = _Review(item_id, event_id, rec["ts"], rec["rating"], first, sentences)
                view = self._view(item_id)
                view.reviews = view.reviews or {}
                view.reviews[event_id] = review
        self._catalog.shrink()

    def _embed_policy(self) -> None:
        """Policy vectors, by text digest: computed once, stored, loaded on the next open."""
        texts = sorted({t for e in self._policy for t in e.text.values() if _digest(t) not in self._policy_vectors})
        vectors = self._encoder.encode(texts) if texts else None
        for t, v in zip(texts, vectors if vectors is not None else [], strict=False):
            self._policy_vectors[_digest(t)] = v.astype(np.float32)
            self._store.put(_key(_POLICY_VEC, _digest(t)), v.astype(np.float32).tobytes())

    # ------------------------------------------------------------------ indexing

    def add_item(self, item: dict[str, Any]) -> None:
        """Index an item event (ValueError when it breaks the item contract); older events are ignored."""
        refused = self.add_items([item])
        if refused:
            raise ValueError(refused[0][1])

    def add_items(self, items: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Index item events, their fields embedded in one batch; returns (position, reason) of each
        event that breaks the item contract. An event older than the one indexed is ignored."""
        refused: list[tuple[int, str]] = []
        latest: dict[str, dict[str, Any]] = {}
        for k, item in enumerate(items):
            try:
                rec = _check_item(item)
            except ValueError as exc:
                refused.append((k, str(exc)))
                continue
            held = latest.get(rec["item_id"])
            if held is None and rec["item_id"] in self._items:
                held = self._items[rec["item_id"]].item
            if held is None or held.get("ts", 0.0) <= rec["ts"]:
                latest[rec["item_id"]] = rec
        rendered = {item_id: _render_fields(rec) for item_id, rec in latest.items()}
        fresh = list(dict.fromkeys(t for fields in rendered.values() for _, t in fields if self._shared.get(t) is None))
        vectors = self._encoder.encode(fresh)
        embedded = {t: _quantized(vectors, k) for k, t in enumerate(fresh)}
        for item_id, rec in latest.items():
            rows: list[tuple[str, str, bytes | None, float]] = []
            for name, t in rendered[item_id]:
                shared = self._shared.get(t)
                if shared is not None:
                    rows.append((name, t, shared[:DIM], _scale_of(shared)))
                else:
                    q, scale = embedded.get(t) or (None, 1.0)
                    rows.append((name, t, None if q is None else q.tobytes(), scale))
            view = self._view(item_id)
            replaced = view.fields
            view.item, view.fields = rec, self._catalog_fields(rows)
            self._cache.pop(item_id, None)
            self._catalog.put(item_id, view.fields, replaced)
            for text, raw in zip(replaced.texts, replaced.vectors, strict=True) if replaced is not None else ():
                if raw is not None:
                    self._shared.release(text)
            self._store.put(_key(_ITEM, item_id), msgpack.packb({"item": rec, "fields": view.fields.rows()}))
        return refused

    def _catalog_fields(self, rows: list[tuple[str, str, bytes | None, float]]) -> _CatalogFields:
        """From (name, text, int8 vector bytes or None, scale) rows, the vectors shared."""
        return _CatalogFields(
            tuple(sys.intern(n) for n, _, _, _ in rows),
            tuple(sys.intern(t) for _, t, _, _ in rows),
            tuple(None if q is None else self._shared.acquire(t, q + array("f", [s]).tobytes()) for _, t, q, s in rows),
        )

    def add_reviews(self, reviews: list[dict[str, Any]]) -> int:
        """Index review events; returns the sentences indexed. Malformed events and repeats are skipped.

        All new sentences are embedded in one batch, after the per-item bound is applied, so
        sentences that would be trimmed at once cost nothing.
        """
        fresh: list[_Review] = []
        for r in reviews:
            review = self._parse_review(r)
            if review is not None and review.event_id not in self._marks:
                self._marks.add(review.event_id)
                review.sentiment = self._sentiment.pop((review.item_id, review.event_id), None)
                self._store.put(_key(_MARK, review.event_id), b"")
                fresh.append(review)
        touched: dict[str, list[_Review]] = {}
        for review in fresh:
            if not review.sentences:
                continue  # emoji or punctuation only: marked as delivered, nothing to index
            view = self._view(review.item_id)
            view.reviews = view.reviews or {}
            view.reviews[review.event_id] = review
            self._cache.pop(review.item_id, None)
            touched.setdefault(review.item_id, []).append(review)
        for item_id in touched:
            self._trim(item_id)
        survivors = [
            review
            for item_id, revs in touched.items()
            for review in revs
            if review.event_id in (self._items[item_id].reviews or {})
        ]
        texts = [s.text(k) for s in (r.sentences for r in survivors) for k in range(len(s))]
        vectors = self._encoder.encode(texts)
        start = 0
        for review in survivors:
            end = start + len(review.sentences)
            if vectors is not None:
                review.sentences = review.sentences.with_vectors(*quantize(vectors[start:end]))
            start = end
            self._store.put(_key(_REVIEW, review.item_id, review.event_id), review.record())
        return len(texts)

    def _parse_review(self, r: Any) -> _Review | None:
        if not isinstance(r, Mapping):
            return None
        event_id, item_id, body = r.get("event_id"), r.get("item_id"), r.get("text")
        if not (isinstance(event_id, str) and _ID.match(event_id) and isinstance(item_id, str) and _ID.match(item_id)):
            return None
        ts = float(r["ts"]) if _finite(r.get("ts")) else 0.0
        rating = float(r["rating"]) if _finite(r.get("rating")) else None
        parts = textlib.split_sentences(body) if isinstance(body, str) else []
        return _Review(item_id, event_id, ts, rating, 0, _Sentences.of([(t, None, 1.0) for t in parts]))

    def _trim(self, item_id: str) -> None:
        """Keep the newest ``max_sentences_per_item`` sentences of the item (by review time)."""
        view = self._items[item_id]
        reviews = view.reviews or {}
        excess = sum(len(r.sentences) for r in reviews.values()) - self._max_sentences
        if excess <= 0:
            return
        for review in sorted(reviews.values(), key=lambda r: (r.ts, r.event_id)):
            if excess <= 0:
                break
            drop = min(excess, len(review.sentences))
            excess -= drop
            review.sentences = review.sentences.tail(drop)
            review.first += drop
            key = _key(_REVIEW, item_id, review.event_id)
            if not review.sentences:
                del reviews[review.event_id]
                self._store.delete(key)
            elif key in self._store:
                self._store.put(key, review.record())

    def set_sentiment(self, item_id: str, review_event_id: str, label: str, score: float) -> None:
        """Attach the engine's sentiment label to a review's sentences (before or after the review)."""
        if label not in ("positive", "negative"):
            return
        self._note_sentiment(item_id, review_event_id, label)
        self._store.put(_key(_SENTIMENT, item_id, review_event_id), msgpack.packb([label, float(score)]))
        self._cache.pop(item_id, None)

    def _note_sentiment(self, item_id: str, event_id: str, label: str) -> None:
        """On the review when it is indexed, else kept until it comes."""
        label = sys.intern(label)
        view = self._items.get(item_id)
        review = (view.reviews or {}).get(event_id) if view is not None else None
        if review is not None:
            review.sentiment = label
        else:
            self._sentiment[(item_id, event_id)] = label

    # ------------------------------------------------------------------ answering

    def ask(self, text: str, *, item_id: str | None = None, lang: str | None = None) -> Answer:
        """Answer a shopper's question from quoted evidence; never raises on any string."""
        question = _clean_question(text)
        q_lang = lang if lang in textlib.LANGS else textlib.detect_lang(question)
        intent = detect_intent(question, item_id=item_id)
        t = _TEMPLATES[q_lang]
        if intent == "human":
            contact = [e for e in self._policy if e.key == "customer_service"]
            evidence = [self._policy_evidence(e, q_lang, 1.0) for e in contact]
            answer = " ".join([t["human"], *(e.text for e in evidence)])
            return Answer(intent, q_lang, answer, evidence, 1.0, True)
        q_tokens = textlib.tokens(question)
        q_vector = self._question_vector(question)
        policy = self._rank_policy(question, q_tokens, q_vector, q_lang, intent)
        items = self._rank_items(q_tokens, q_vector, q_lang, item_id)
        best_policy = policy[0] if policy else None
        best_item = items[0] if items else None
        use_policy = best_policy is not None and (
            best_item is None
            or (intent in POLICY_INTENTS and best_policy.score >= POLICY_FLOOR)
            or best_policy.score > best_item.score
        )
        ranked = policy if use_policy else items
        floor = POLICY_FLOOR if use_policy else HANDOFF_BELOW
        if not ranked or ranked[0].score < floor:
            evidence = ranked[:1]
            confidence = ranked[0].score if ranked else 0.0
            return Answer(intent, q_lang, t["handoff"], evidence, round(confidence, 4), True)
        top = ranked[0].score
        evidence = [e for e in ranked if e.score >= max(QUOTE_FLOOR, QUOTE_SHARE * top)][:MAX_QUOTES]
        if use_policy:
            evidence = evidence[:1]
        answer = self._compose(evidence, items if not use_policy else [], q_tokens, q_lang)
        return Answer(intent, q_lang, answer, evidence, round(top, 4), False)

    def _question_vector(self, question: str) -> np.ndarray | None:
        vectors = self._encoder.encode([question])
        return None if vectors is None else vectors[0]

    def _policy_evidence(self, entry: PolicyEntry, lang: str, score: float) -> Evidence:
        return Evidence(entry.text[lang], None, f"policy:{entry.key}", lang, None, None, round(score, 4))

    def _rank_policy(
        self, question: str, q_tokens: list[str], q_vector: np.ndarray | None, lang: str, intent: str
    ) -> list[Evidence]:
        """Policy entries by a score from keyword hits, encoder similarity and the intent's topic.

        Not the ePQA ranker: shop policy is not product evidence. The weights below are set by hand
        and checked on the gold policy questions.
        """
        out = []
        vectors = self._policy_vectors_by_lang.get(lang)
        if vectors is None:
            vectors = self._policy_vectors_by_lang[lang] = [
                self._policy_vectors.get(_digest(entry.text[lang])) for entry in self._policy
            ]
        for entry, vec in zip(self._policy, vectors, strict=True):
            hits = entry.matches(question)
            cos = 0.0
            if q_vector is not None:
                cos = float(vec @ q_vector) if vec is not None else 0.0
            z = -3.0 + 1.5 * min(hits, 2) + 4.0 * cos + (1.0 if entry.topic == intent else 0.0)
            out.append(self._policy_evidence(entry, lang, 1.0 / (1.0 + math.exp(-z))))
        return sorted(out, key=lambda e: -e.score)

    def _rank_items(
        self, q_tokens: list[str], q_vector: np.ndarray | None, lang: str, item_id: str | None
    ) -> list[Evidence]:
        """Review sentences and catalog fields of the item (or of the best-matching items), by the ranker.

        Only what an answer can use is returned, best first: the best candidate and every other
        reaching ``QUOTE_FLOOR`` (quotes and the stance count need no lower score).
        """
        if item_id is not None:
            item_ids = [item_id] if item_id in self._items else []
        else:
            item_ids = self._match_items(q_tokens, q_vector)
        parts = [self._candidates(i) for i in item_ids]
        evidence = [e for part, _ in parts for e in part]
        if not evidence:
            return []
        x = CandidateSet.concat([s for _, s in parts]).features(q_tokens, q_vector)
        if q_vector is None:
            scores = self._rankers["lexical"].predict(x)
        else:
            same = np.array([e.lang == lang for e in evidence])
            cross = x.copy()
            cos = ALL_FEATURES.index("cos")
            cross[:, cos] = self._cross_lingual_cos(cross[:, cos])
            scores = np.where(same, self._rankers["full"].predict(x), self._rankers["encoder"].predict(cross))
        order = np.argsort(-scores, kind="stable")
        kept = order[: max(1, int(np.count_nonzero(scores >= QUOTE_FLOOR - 1e-4)))]  # scores are rounded to 4 places
        return [_with_score(evidence[i], float(scores[i])) for i in kept]

    def _cross_lingual_cos(self, cos: np.ndarray) -> np.ndarray:
        """Similarities across languages put on the scale of similarities within one.

        The encoder scores a translation well below an identical sentence; the policy's own zh/en
        pairs measure by how much (``unrelated`` texts across languages score like those within one,
        a ``translation`` like a near-paraphrase), and the map stretches the range between them.
        """
        if self._cross_scale is None:
            zh = [self._policy_vectors.get(_digest(e.text["zh"])) for e in self._policy]
            en = [self._policy_vectors.get(_digest(e.text["en"])) for e in self._policy]
            pairs = [(a, b) for a, b in zip(zh, en, strict=True) if a is not None and b is not None]
            if len(pairs) < 3:
                self._cross_scale = (0.0, 1.0)
            else:
                a, b = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
                sims = a @ b.T
                off = ~np.eye(len(pairs), dtype=bool)
                unrelated, translation = float(sims[off].mean()), float(np.diag(sims).mean())
                self._cross_scale = (unrelated, (1.0 - unrelated) / max(translation - unrelated, 1e-3))
        unrelated, stretch = self._cross_scale
        return np.clip(unrelated + (cos - unrelated) * stretch, -1.0, 1.0)

    def _candidates(self, item_id: str) -> tuple[list[Evidence], CandidateSet]:
        """The item's catalog fields and review sentences as evidence, and their candidate set (cached)."""
        cached = self._cache.pop(item_id, None)
        if cached is None:
            cached = self._build_candidates(item_id)
        self._cache[item_id] = cached  # the most recently used last
        while len(self._cache) > CACHED_ITEMS:
            del self._cache[next(iter(self._cache))]
        return cached

    def _build_candidates(self, item_id: str) -> tuple[list[Evidence], CandidateSet]:
        view = self._items[item_id]
        evidence, cands = [], []
        ts = view.item.get("ts") if view.item else None
        fields = view.fields
        for k, (name, text) in enumerate(zip(fields.names, fields.texts, strict=True) if fields else ()):
            assert fields is not None
            lang = textlib.detect_lang(text)
            source = "description" if name == "title" else "attribute"
            evidence.append(Evidence(text, item_id, f"catalog:{name}", lang, None, ts, 0.0))
            cands.append(Candidate(text, textlib.tokens(text), source, fields.vector(k)))
        for review in (view.reviews or {}).values():
            sentiment = review.sentiment or _from_rating(review.rating)
            s = review.sentences
            for k in range(len(s)):
                text = s.text(k)
                lang = textlib.detect_lang(text)
                evidence.append(Evidence(text, item_id, review.event_id, lang, sentiment, review.ts, 0.0))
                cands.append(Candidate(text, textlib.tokens(text), "review", s.vector(k)))
        return evidence, CandidateSet.of(cands)

    def _match_items(self, q_tokens: list[str], q_vector: np.ndarray | None) -> list[str]:
        """Items whose catalog fields best match a question asked without an item."""
        return self._catalog.best(q_tokens, q_vector, ITEMS_SEARCHED)

    def _compose(self, evidence: list[Evidence], ranked: list[Evidence], q_tokens: list[str], lang: str) -> str:
        """The answer's text: fixed templates around the quoted evidence, with a stance count for reviews."""
        t = _TEMPLATES[lang]
        policy = [e for e in evidence if e.event_id.startswith("policy:")]
        if policy:
            return t["policy"].format(quotes=policy[0].text)
        parts = []
        reviews = [e for e in evidence if not e.event_id.startswith("catalog:")]
        catalog = [e for e in evidence if e.event_id.startswith("catalog:")]
        floor = max(QUOTE_FLOOR, QUOTE_SHARE * evidence[0].score)
        stance: dict[str, str | None] = {}
        for e in ranked:
            if e.score >= floor and not e.event_id.startswith("catalog:") and e.event_id not in stance:
                stance[e.event_id] = e.sentiment
        labelled = [s for s in stance.values() if s is not None]
        if labelled:
            topic = _topic(q_tokens, [e for e in ranked if e.event_id in stance], lang)
            key = "stance" if topic else "stance_generic"
            pos = sum(1 for s in labelled if s == "positive")
            parts.append(t[key].format(pos=pos, n=len(labelled), topic=topic))
        if reviews:
            parts.append(t["reviews"].format(quotes=" ".join(t["quote"].format(text=e.text) for e in reviews)))
        if catalog:
            parts.append(t["catalog"].format(quotes="; ".join(e.text for e in catalog)))
        return " ".join(parts)

    # ------------------------------------------------------------------ replies

    def draft_reply(self, review: dict[str, Any], label: str | None) -> ReplyDraft | None:
        """A reply draft for an unhappy review (label "negative" or rating <= 2), else None."""
        if not isinstance(review, Mapping):
            return None
        rating = review.get("rating")
        unhappy = label == "negative" or (isinstance(rating, int | float) and _finite(rating) and rating <= 2)
        body = review.get("text")
        if not unhappy or not isinstance(body, str):
            return None
        item_id = str(review.get("item_id", ""))
        view = self._items.get(item_id)
        title = view.item.get("title") if view is not None and view.item is not None else None
        return write_reply(
            item_id=item_id,
            review_event_id=str(review.get("event_id", "")),
            lang=textlib.detect_lang(body),
            aspects=aspects_of(body, self._question_vector(body[:2000])),
            title=title,
            policy=self._policy,
        )


def _token_set(fields: _CatalogFields) -> set[str]:
    return {tok for t in fields.texts for tok in textlib.tokens(t)}


def _scale_of(raw: bytes | None) -> float:
    return 1.0 if raw is None else float(np.frombuffer(raw, np.float32, 1, DIM)[0])


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _quantized(vectors: np.ndarray | None, k: int) -> tuple[np.ndarray | None, float]:
    if vectors is None:
        return None, 1.0
    q, scale = quantize(vectors[k : k + 1])
    return q[0], float(scale[0])


def _vector(q: np.ndarray | None, scale: float) -> np.ndarray:
    """A stored sentence's float32 vector; zeros when it was indexed without the encoder."""
    if q is None:
        return np.zeros(DIM, dtype=np.float32)
    return dequantize(q[None, :], np.asarray([scale], dtype=np.float32))[0]


def _with_score(e: Evidence, score: float) -> Evidence:
    return Evidence(e.text, e.item_id, e.event_id, e.lang, e.sentiment, e.ts, round(score, 4))


def _from_rating(rating: float | None) -> str | None:
    if rating is None:
        return None
    return "positive" if rating >= 4 else "negative" if rating <= 2 else None


def _topic(q_tokens: Iterable[str], evidence: list[Evidence], lang: str) -> str | None:
    """The question's word that the relevant reviews share, longest first; None when they share none."""
    same = [(textlib.tokens(e.text), e.text.lower()) for e in evidence if e.lang == lang]
    shared = [tok for tok in dict.fromkeys(q_tokens) if len(tok) > 1 and any(tok in t and tok in s for t, s in same)]
    return max(shared, key=len) if shared else None
