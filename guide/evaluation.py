"""``shopguide evaluate answers|ask|aspects|guide-speed``: the guide's quality and speed figures.

``register(subparsers)`` adds the commands to the ``evaluate`` subparsers of the CLI; each
prints a JSON document (``--json [FILE]`` also writes it to FILE) and returns it.

* ``answers``: precision at 1 on ePQA (``../shared/data/product_qa``): BM25, the encoder, their
  reciprocal-rank fusion (``hybrid``, nothing fitted) and the shipped ranker (``model``). The
  ranker's headline figure is held out: fitted on four folds of questions, scored on the fifth.
  ``--fit`` refits the shipped weights on the whole file.
* ``ask``: the knowledge base on the demo catalog and its gold questions (``guide/gold``).
* ``aspects``: complaint aspects of the labelled negative reviews, macro-F1 per language.
* ``guide-speed``: index bytes per sentence and ``ask`` latency on a synthetic shop (10,000 items,
  100,000 sentences by default).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guide import knowledge, ranker
from guide.encoder import Encoder
from guide.text import detect_lang, split_sentences, tokens

GOLD_DIR = Path(__file__).with_name("gold")
FOLDS = 5
#: Share of unanswerable questions the handoff threshold is calibrated to hand to a person.
HANDOFF_TARGET = 0.8
SEED = 0


# --------------------------------------------------------------------------- ePQA


@dataclass
class EpqaQuestion:
    qid: str
    question: str
    title: str
    cands: list[ranker.Candidate]
    labels: list[int]


def read_epqa(path: Path) -> list[EpqaQuestion]:
    """Questions of an ePQA CSV with their candidates, in file order."""
    by_qid: dict[str, EpqaQuestion] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            q = by_qid.get(row["qid"])
            if q is None:
                q = by_qid[row["qid"]] = EpqaQuestion(row["qid"], row["question"], row["title"], [], [])
            q.cands.append(ranker.Candidate(row["candidate"], tokens(row["candidate"]), row["source"]))
            q.labels.append(int(row["label"]))
    return list(by_qid.values())


def _embed_epqa(questions: list[EpqaQuestion], encoder: Encoder) -> list[np.ndarray | None]:
    """Vectors of the questions; candidates get theirs (and a community answer its question's) in place."""
    texts: list[str] = [q.question for q in questions]
    slots: list[tuple[ranker.Candidate, str]] = []
    for q in questions:
        for c in q.cands:
            answer, sep, asked = c.text.partition(" Question: ")
            texts.append(answer if sep else c.text)
            slots.append((c, "vector"))
            if sep:
                texts.append(asked)
                slots.append((c, "question_vector"))
    vectors = encoder.encode(texts)
    if vectors is None:
        return [None] * len(questions)
    for (c, attr), v in zip(slots, vectors[len(questions) :], strict=True):
        setattr(c, attr, v)
    return list(vectors[: len(questions)])


def _p_at_1(scores: list[np.ndarray], labels: list[list[int]]) -> float:
    hits = [labels[i][int(np.argmax(s))] == 2 for i, s in enumerate(scores)]
    return round(float(np.mean(hits)), 4) if hits else 0.0


def _rrf(*rankings: np.ndarray) -> np.ndarray:
    out = np.zeros_like(rankings[0], dtype=np.float64)
    for r in rankings:
        ranks = np.argsort(np.argsort(-r, kind="stable"), kind="stable")
        out += 1.0 / (60.0 + ranks)
    return out


def answers_figures(path: Path, *, fit_shipped: bool = False) -> dict[str, Any]:
    """p@1 of every method on an ePQA file (questions with a label-2 candidate)."""
    questions = [q for q in read_epqa(path) if 2 in q.labels]
    encoder = Encoder()
    q_vectors = _embed_epqa(questions, encoder)
    feats = [ranker.feature_matrix(tokens(q.question), v, q.cands) for q, v in zip(questions, q_vectors, strict=True)]
    labels = [q.labels for q in questions]
    col = {name: i for i, name in enumerate(ranker.ALL_FEATURES)}
    results: dict[str, dict[str, float]] = {
        "bm25": {"p_at_1": _p_at_1([f[:, col["bm25_rel"]] for f in feats], labels)},
        "encoder": {"p_at_1": _p_at_1([f[:, col["cos"]] for f in feats], labels)},
        "hybrid": {"p_at_1": _p_at_1([_rrf(f[:, col["bm25_rel"]], f[:, col["cos"]]) for f in feats], labels)},
    }
    order = list(range(len(questions)))
    random.Random(SEED).shuffle(order)
    fold_of = {qi: k % FOLDS for k, qi in enumerate(order)}
    held: dict[str, list[np.ndarray]] = {v: [np.zeros(0)] * len(questions) for v in ranker.VARIANTS}
    for k in range(FOLDS):
        train = [i for i in range(len(questions)) if fold_of[i] != k]
        x = np.vstack([feats[i] for i in train])
        y = np.concatenate([np.asarray(labels[i]) == 2 for i in train]).astype(int)
        for variant in ranker.VARIANTS:
            fitted = ranker.fit(variant, x, y)
            for i in range(len(questions)):
                if fold_of[i] == k:
                    held[variant][i] = fitted.predict(feats[i])
    results["model"] = {"p_at_1": _p_at_1(held["full"], labels), "held_out_folds": FOLDS}
    results["model_encoder_only"] = {"p_at_1": _p_at_1(held["encoder"], labels), "held_out_folds": FOLDS}
    results["model_lexical_only"] = {"p_at_1": _p_at_1(held["lexical"], labels), "held_out_folds": FOLDS}
    shipped = ranker.load_rankers() if ranker.WEIGHTS_PATH.exists() and not fit_shipped else None
    if fit_shipped:
        x = np.vstack(feats)
        y = np.concatenate([np.asarray(lab) == 2 for lab in labels]).astype(int)
        shipped = {v: ranker.fit(v, x, y) for v in ranker.VARIANTS}
        ranker.save_rankers(shipped, note=f"fitted on {path.name}, {len(questions)} questions")
    if shipped is not None:
        results["model_shipped_weights_in_sample"] = {
            "p_at_1": _p_at_1([shipped["full"].predict(f) for f in feats], labels)
        }
    return {
        "task": "answers",
        "path": str(path),
        "questions": len(questions),
        "questions_in_file": len(read_epqa(path)),
        "encoder_available": encoder.available,
        "results": results,
    }


def cmd_answers(args: argparse.Namespace) -> dict[str, Any]:
    payload = answers_figures(Path(args.path), fit_shipped=args.fit)
    _emit(args, payload)
    return payload


# --------------------------------------------------------------------------- gold sets


def load_gold(name: str) -> dict[str, Any]:
    return json.loads((GOLD_DIR / f"{name}.json").read_text(encoding="utf-8"))


def demo_knowledge_base(*, use_encoder: bool = True) -> knowledge.KnowledgeBase:
    """An in-memory knowledge base holding the gold demo catalog and its reviews."""
    catalog = load_gold("catalog")
    kb = knowledge.KnowledgeBase.open(None, use_encoder=use_encoder)
    for item in catalog["items"]:
        kb.add_item(item)
    kb.add_reviews(catalog["reviews"])
    return kb


def _evidence_langs(gold: list[str], review_lang: dict[str, str]) -> set[str]:
    langs: set[str] = set()
    for g in gold:
        if g.startswith("policy:"):
            langs.update(("zh", "en"))
        elif g.startswith("catalog:"):
            langs.add("en")
        else:
            langs.add(review_lang[g])
    return langs


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _handed(row: dict[str, Any], threshold: float) -> bool:
    floor = knowledge.POLICY_FLOOR if str(row["top"]).startswith("policy:") else threshold
    return row["intent"] == "human" or row["top"] is None or row["confidence"] < floor


def _ask_figures(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """p@1 (top evidence is gold), answered correctly (and not handed off), handoff recall."""

    def handed(r: dict[str, Any]) -> bool:
        return _handed(r, threshold)

    out: dict[str, Any] = {}
    groups = {
        "zh": [r for r in rows if r["lang"] == "zh"],
        "en": [r for r in rows if r["lang"] == "en"],
        "cross_lingual": [r for r in rows if r["cross"]],
    }
    for name, group in groups.items():
        answerable = [r for r in group if r["gold"]]
        out[name] = {
            "questions": len(answerable),
            "p_at_1": _rate([r["top"] in r["gold"] for r in answerable]),
            "answered_correctly": _rate([r["top"] in r["gold"] and not handed(r) for r in answerable]),
        }
    unanswerable = [r for r in rows if not r["gold"]]
    out["unanswerable"] = {"questions": len(unanswerable), "handoff_recall": _rate([handed(r) for r in unanswerable])}
    answerable = [r for r in rows if r["gold"]]
    out["answerable_handed_off"] = _rate([handed(r) for r in answerable])
    return out


def _best_threshold(rows: list[dict[str, Any]]) -> float:
    """The lowest threshold that hands off ``HANDOFF_TARGET`` of the unanswerable questions.

    Every question above it is answered, so the lowest such threshold answers the most.
    """
    unanswerable = [r for r in rows if not r["gold"]]
    for t in np.arange(0.0, 1.0, 0.01):
        if sum(_handed(r, float(t)) for r in unanswerable) >= HANDOFF_TARGET * len(unanswerable):
            return round(float(t), 2)
    return 1.0


def ask_figures(*, use_encoder: bool = True) -> dict[str, Any]:
    """The knowledge base on the gold questions: figures at the shipped threshold and calibrated by halves."""
    kb = demo_knowledge_base(use_encoder=use_encoder)
    review_lang = {r["event_id"]: detect_lang(r["text"]) for r in load_gold("catalog")["reviews"]}
    rows = []
    for q in load_gold("questions")["questions"]:
        a = kb.ask(q["text"], item_id=q["item_id"])
        rows.append(
            {
                "id": q["id"],
                "lang": a.lang,
                "intent": a.intent,
                "gold": q["gold"],
                "cross": bool(q["gold"]) and a.lang not in _evidence_langs(q["gold"], review_lang),
                "top": a.evidence[0].event_id if a.evidence else None,
                "confidence": a.confidence,
            }
        )
    intents = [
        kb_intent == q["intent"]
        for kb_intent, q in zip((r["intent"] for r in rows), load_gold("questions")["questions"], strict=True)
    ]
    halves = [[r for k, r in enumerate(rows) if k % 2 == h] for h in (0, 1)]
    split = {}
    for h in (0, 1):
        t = _best_threshold(halves[h])
        split[f"calibrated_on_half_{h}"] = {"threshold": t, "figures_on_other_half": _ask_figures(halves[1 - h], t)}
    kb.close()
    return {
        "task": "ask",
        "encoder_available": kb.encoder_available,
        "questions": len(rows),
        "intent_accuracy": _rate(intents),
        "threshold": knowledge.HANDOFF_BELOW,
        "threshold_best_on_all": _best_threshold(rows),
        "results": _ask_figures(rows, knowledge.HANDOFF_BELOW),
        "split": split,
        "misses": [r["id"] for r in rows if r["gold"] and r["top"] not in r["gold"]],
    }


def aspects_figures() -> dict[str, Any]:
    """Per-aspect and macro F1 of ``detect_aspects`` per language, on the labelled negative reviews.

    ``aspects`` is the set the cue lexicons were written against; ``aspects_holdout`` was written
    afterwards and never used to change them.
    """
    from guide.aspects import ASPECTS, detect_aspects

    payload: dict[str, Any] = {"task": "aspects"}
    for name, key in (("aspects", "results"), ("aspects_holdout", "holdout")):
        reviews = load_gold(name)["reviews"]
        results: dict[str, Any] = {}
        for lang in ("zh", "en"):
            counts = {a: [0, 0, 0] for a in ASPECTS}  # true positives, false positives, false negatives
            group = [r for r in reviews if r["lang"] == lang]
            for r in group:
                predicted, gold = set(detect_aspects(r["text"])), set(r["aspects"])
                for a in ASPECTS:
                    counts[a][0] += a in predicted and a in gold
                    counts[a][1] += a in predicted and a not in gold
                    counts[a][2] += a in gold and a not in predicted
            f1 = {a: round(2 * tp / (2 * tp + fp + fn), 4) for a, (tp, fp, fn) in counts.items() if tp + fp + fn}
            results[lang] = {"reviews": len(group), "macro_f1": round(float(np.mean(list(f1.values()))), 4), "f1": f1}
        payload[key] = results
    return payload


def cmd_ask(args: argparse.Namespace) -> dict[str, Any]:
    payload = ask_figures(use_encoder=not args.no_encoder)
    _emit(args, payload)
    return payload


def fit_aspect_model() -> dict[str, Any]:
    """Fit the embedding heads of ``guide.aspects`` on ``gold/aspects.json`` and write ``aspects_model.json``.

    Regularisation and threshold are chosen by 5-fold cross-validation of the heads alone (the
    lexicons were written against this set, so a vote with them would choose nothing); the held-out
    set stays out of the fit.
    """
    from sklearn.linear_model import LogisticRegression

    from guide.aspects import ASPECTS, MODEL_PATH

    reviews = load_gold("aspects")["reviews"]
    x = Encoder().encode([r["text"] for r in reviews])
    if x is None:
        raise RuntimeError("the sentence encoder is unavailable")
    heads = [a for a in ASPECTS if a != "other"]
    y = {a: np.array([a in r["aspects"] for r in reviews]) for a in heads}
    folds = np.arange(len(reviews)) % FOLDS
    scores = {}
    for c in (1.0, 4.0, 16.0, 64.0):
        prob = {a: np.zeros(len(reviews)) for a in heads}
        for k in range(FOLDS):
            train = folds != k
            for a in heads:
                prob[a][~train] = (
                    LogisticRegression(C=c, max_iter=2000).fit(x[train], y[a][train]).predict_proba(x[~train])[:, 1]
                )
        for threshold in (0.2, 0.3, 0.4, 0.5):
            f1 = []
            for a in heads:
                p = prob[a] >= threshold
                tp, fp, fn = int((p & y[a]).sum()), int((p & ~y[a]).sum()), int((~p & y[a]).sum())
                f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
            scores[(c, threshold)] = float(np.mean(f1))
    c, threshold = max(scores, key=lambda k: scores[k])
    fitted = {a: LogisticRegression(C=c, max_iter=2000).fit(x, y[a]) for a in heads}
    payload = {
        "note": f"fitted on gold/aspects.json ({len(reviews)} reviews); C and threshold by {FOLDS}-fold CV",
        "c": c,
        "threshold": threshold,
        "cv_macro_f1_heads_alone": round(scores[(c, threshold)], 4),
        "heads": {
            a: {"weights": m.coef_[0].round(5).tolist(), "bias": round(float(m.intercept_[0]), 5)}
            for a, m in fitted.items()
        },
    }
    MODEL_PATH.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    return {k: v for k, v in payload.items() if k != "heads"}


def cmd_aspects(args: argparse.Namespace) -> dict[str, Any]:
    fitted = fit_aspect_model() if args.fit else None
    payload = aspects_figures()
    if fitted is not None:
        payload["fitted"] = fitted
    _emit(args, payload)
    return payload


# --------------------------------------------------------------------------- speed


def speed_figures(*, items: int, sentences_per_item: int, questions: int, path: str | None) -> dict[str, Any]:
    """Index size and ``ask`` latency in-process on a synthetic shop built from the gold reviews' sentences.

    Every item gets the demo catalog's fields under a new id, and reviews made of gold sentences,
    all embedded for real; questions are the gold questions, half about an item, half without one.
    Latency is wall time and the thread's CPU time (the cost on a machine nobody else uses), with
    the load average at the end.
    """
    import tempfile
    import time

    catalog = load_gold("catalog")
    pool = [t for r in catalog["reviews"] for t in split_sentences(r["text"])]
    qs = load_gold("questions")["questions"]
    rng = random.Random(SEED)
    knowledge.single_threaded_blas()  # as the guide service answers
    with tempfile.TemporaryDirectory() as tmp:
        kb = knowledge.KnowledgeBase.open(path or tmp)
        start = time.perf_counter()
        for n in range(items):
            base = catalog["items"][n % len(catalog["items"])]
            kb.add_item({**base, "item_id": f"s-{n:05d}", "title": f"{base['title']} {n}"})
        item_seconds = time.perf_counter() - start
        start, indexed = time.perf_counter(), 0
        for first in range(0, items, 100):
            batch = [
                {
                    "event_id": f"s-{n:05d}-{k}",
                    "item_id": f"s-{n:05d}",
                    "text": rng.choice(pool),
                    "ts": 1_795_800_000.0 + k,
                    "rating": rng.randint(1, 5),
                }
                for n in range(first, min(first + 100, items))
                for k in range(sentences_per_item)
            ]
            indexed += kb.add_reviews(batch)
        review_seconds = time.perf_counter() - start
        stats = kb.stats()
        latencies: dict[str, list[float]] = {"with_item": [], "without_item": []}
        cpu: dict[str, list[float]] = {"with_item": [], "without_item": []}
        for k in range(questions):
            q = qs[k % len(qs)]
            item_id = f"s-{rng.randrange(items):05d}" if k % 2 == 0 else None
            start, start_cpu = time.perf_counter(), time.thread_time()
            kb.ask(q["text"], item_id=item_id)
            kind = "with_item" if item_id else "without_item"
            latencies[kind].append(1000 * (time.perf_counter() - start))
            cpu[kind].append(1000 * (time.thread_time() - start_cpu))
        kb.close()
        disk = sum(f.stat().st_size for f in Path(path or tmp).rglob("*") if f.is_file())
    return {
        "task": "speed",
        "items": items,
        "sentences": stats["sentences"],
        "index_bytes_per_sentence": stats["bytes_per_sentence"],
        "rocksdb_disk_bytes_per_sentence": round(disk / max(1, stats["sentences"]), 1),
        "add_item_ms": round(1000 * item_seconds / items, 2),
        "add_reviews_sentences_per_s": round(indexed / review_seconds, 1),
        "ask_ms": _percentiles(latencies),
        "ask_cpu_ms": _percentiles(cpu),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _percentiles(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2)}
        for name, v in samples.items()
    }


def cmd_speed(args: argparse.Namespace) -> dict[str, Any]:
    payload = speed_figures(
        items=args.items, sentences_per_item=args.sentences_per_item, questions=args.questions, path=args.path
    )
    _emit(args, payload)
    return payload


# --------------------------------------------------------------------------- CLI


def _emit(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if args.json not in (None, "-"):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)


def register(subparsers: Any) -> None:
    """Add ``answers``, ``ask``, ``aspects`` and ``guide-speed`` to the ``evaluate`` subparsers of an argparse CLI."""
    ans = subparsers.add_parser("answers", help="answer ranking, precision at 1 on ePQA")
    ans.add_argument("--path", required=True, help="ePQA CSV (qid,question,ASIN,candidate,source,...,label)")
    ans.add_argument("--fit", action="store_true", help="refit the shipped ranker weights on this file")
    ans.add_argument("--json", nargs="?", const="-", help="print JSON; with FILE, also write it there")
    ans.set_defaults(func=cmd_answers)

    ask = subparsers.add_parser("ask", help="the knowledge base on the gold questions over the demo catalog")
    ask.add_argument("--no-encoder", action="store_true", help="answer from BM25 alone")
    ask.add_argument("--json", nargs="?", const="-", help="print JSON; with FILE, also write it there")
    ask.set_defaults(func=cmd_ask)

    asp = subparsers.add_parser("aspects", help="complaint aspects of labelled negative reviews, macro-F1")
    asp.add_argument("--fit", action="store_true", help="refit the shipped embedding heads on gold/aspects.json")
    asp.add_argument("--json", nargs="?", const="-", help="print JSON; with FILE, also write it there")
    asp.set_defaults(func=cmd_aspects)

    speed = subparsers.add_parser("guide-speed", help="the guide's index size and ask latency at shop scale")
    speed.add_argument("--items", type=int, default=10_000)
    speed.add_argument("--sentences-per-item", type=int, default=10)
    speed.add_argument("--questions", type=int, default=2_000)
    speed.add_argument("--path", help="RocksDB directory to build the index in (default: a temporary one)")
    speed.add_argument("--json", nargs="?", const="-", help="print JSON; with FILE, also write it there")
    speed.set_defaults(func=cmd_speed)
