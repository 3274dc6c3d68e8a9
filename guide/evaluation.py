"""``shopguide evaluate answers|aspects|ask``: the guide's quality figures.

``register(subparsers)`` adds the three commands to the ``evaluate`` subparsers of the CLI; each
prints a JSON document (``--json [FILE]`` also writes it to FILE) and returns it.

* ``answers``: precision at 1 on ePQA (``../shared/data/product_qa``): BM25, the encoder, their
  reciprocal-rank fusion (``hybrid``, nothing fitted) and the shipped ranker (``model``). The
  ranker's headline figure is held out: fitted on four folds of questions, scored on the fifth.
  ``--fit`` refits the shipped weights on the whole file.
* ``ask``: the knowledge base on the demo catalog and its gold questions (``guide/gold``).
* ``aspects``: complaint aspects of the labelled negative reviews, macro-F1 per language.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guide import ranker
from guide.encoder import Encoder
from guide.text import tokens

GOLD_DIR = Path(__file__).with_name("gold")
FOLDS = 5
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
        results["model_shipped_weights"] = {"p_at_1": _p_at_1([shipped["full"].predict(f) for f in feats], labels)}
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


# --------------------------------------------------------------------------- CLI


def _emit(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if args.json not in (None, "-"):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)


def register(subparsers: Any) -> None:
    """Add ``answers``, ``aspects`` and ``ask`` to the ``evaluate`` subparsers of an argparse CLI."""
    ans = subparsers.add_parser("answers", help="answer ranking, precision at 1 on ePQA")
    ans.add_argument("--path", required=True, help="ePQA CSV (qid,question,ASIN,candidate,source,...,label)")
    ans.add_argument("--fit", action="store_true", help="refit the shipped ranker weights on this file")
    ans.add_argument("--json", nargs="?", const="-", help="print JSON; with FILE, also write it there")
    ans.set_defaults(func=cmd_answers)
