"""The evidence ranker: a logistic regression over lexical, semantic and source features.

It scores how likely a candidate sentence (a review sentence, a catalog field, a policy entry)
answers a question, as a probability, so that scores compare across candidates and sources and a
handoff threshold means something. It was fitted on the ePQA dev half by ``shopguide evaluate
answers --fit`` (figures held out by question folds are in ``guide/README.md``) and ships as
``ranker.json``; scoring is a numpy dot product.

Three variants share the features they can: ``full``; ``encoder`` (no lexical features) for a
candidate in another language than the question, where BM25 is blind; ``lexical`` (no encoder
features) for when the encoder is unavailable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guide.bm25 import Bm25Index

WEIGHTS_PATH = Path(__file__).with_name("ranker.json")

#: Sources of evidence; ePQA's five, of which the guide's catalog fields are ``attribute`` and
#: its titles ``description``. Policy entries are ranked apart (``guide.knowledge``).
SOURCES = ("review", "attribute", "description", "bullet", "cqa")
SEMANTIC = ("cos", "cos_rank", "cos_place", "cqa_question_cos")
LEXICAL = ("bm25_rel", "bm25_rank", "bm25_place", "overlap")
SHAPE = tuple(f"source_{s}" for s in SOURCES)
VARIANTS = {
    "full": SEMANTIC + LEXICAL + SHAPE,
    "encoder": SEMANTIC + SHAPE,
    "lexical": LEXICAL + SHAPE,
}
ALL_FEATURES = SEMANTIC + LEXICAL + SHAPE


@dataclass
class Candidate:
    """One candidate sentence: its tokens, source, and (when the encoder runs) unit vectors."""

    text: str
    tokens: list[str]
    source: str
    vector: np.ndarray | None = None
    #: For a community answer quoted with its question, the vector of that question.
    question_vector: np.ndarray | None = None


class CandidateSet:
    """The question-independent part of ``feature_matrix`` for a fixed list of candidates.

    BM25 postings, the stacked unit vectors and the source columns are built once; the knowledge
    base keeps one set per item until the item changes, and joins the sets of several items with
    ``concat``. ``features`` gives exactly what scoring the candidates from scratch gives.
    """

    def __init__(
        self,
        bm25: Bm25Index,
        shape: np.ndarray,
        vectors: np.ndarray | None,
        question_vectors: list[tuple[int, np.ndarray]],
    ) -> None:
        self.bm25 = bm25
        self.shape = shape
        self.vectors = vectors
        self.question_vectors = question_vectors

    @classmethod
    def of(cls, cands: Sequence[Candidate]) -> CandidateSet:
        shape = np.zeros((len(cands), len(SHAPE)), dtype=np.float64)
        for i, c in enumerate(cands):
            if c.source in SOURCES:
                shape[i, SOURCES.index(c.source)] = 1.0
        has_vectors = bool(cands) and all(c.vector is not None for c in cands)
        vectors = np.stack([c.vector for c in cands]) if has_vectors else None  # type: ignore[misc]
        question_vectors = [(i, c.question_vector) for i, c in enumerate(cands) if c.question_vector is not None]
        return cls(Bm25Index.build([c.tokens for c in cands]), shape, vectors, question_vectors)

    @classmethod
    def concat(cls, parts: Sequence[CandidateSet]) -> CandidateSet:
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [len(p) for p in parts])
        vectors = np.concatenate([p.vectors for p in parts]) if all(p.vectors is not None for p in parts) else None
        question_vectors = [
            (int(o) + i, v) for p, o in zip(parts, offsets, strict=False) for i, v in p.question_vectors
        ]
        return cls(
            Bm25Index.concat([p.bm25 for p in parts]),
            np.concatenate([p.shape for p in parts]),
            vectors,
            question_vectors,
        )

    def __len__(self) -> int:
        return len(self.bm25)

    def features(self, q_tokens: Sequence[str], q_vector: np.ndarray | None) -> np.ndarray:
        """``(len(self), len(ALL_FEATURES))`` features of the candidates for one question."""
        n = len(self)
        x = np.zeros((n, len(ALL_FEATURES)), dtype=np.float64)
        if n == 0:
            return x
        col = {name: i for i, name in enumerate(ALL_FEATURES)}
        bm = self.bm25.scores(q_tokens)
        top = bm.max()
        x[:, col["bm25_rel"]] = bm / top if top > 0 else 0.0
        x[:, col["bm25_rank"]], x[:, col["bm25_place"]] = _rank_features(bm)
        x[:, col["overlap"]] = self.bm25.overlap(q_tokens)
        x[:, col[SHAPE[0]] : col[SHAPE[-1]] + 1] = self.shape
        if q_vector is not None:
            for i, v in self.question_vectors:
                x[i, col["cqa_question_cos"]] = float(v @ q_vector)
            if self.vectors is not None:
                cos = self.vectors @ q_vector
                x[:, col["cos"]] = cos
                x[:, col["cos_rank"]], x[:, col["cos_place"]] = _rank_features(cos)
        return x


def feature_matrix(q_tokens: Sequence[str], q_vector: np.ndarray | None, cands: Sequence[Candidate]) -> np.ndarray:
    """``(len(cands), len(ALL_FEATURES))`` features of the candidates of one question."""
    return CandidateSet.of(cands).features(q_tokens, q_vector)


def _rank_features(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank (1, 1/2, 1/3...) and place (0, 0.1, 0.2...) of each score among the candidates.

    Ranks let the two scorers vote as rank fusion does, whatever their scales; the absolute scores
    stay features too, so that a probability still says how good the best candidate is.
    """
    ranks = np.argsort(np.argsort(-scores, kind="stable"), kind="stable")
    return 1.0 / (1.0 + ranks), ranks / 10.0


@dataclass(frozen=True)
class Ranker:
    """A fitted variant: probability that a candidate answers, from ``feature_matrix`` rows."""

    variant: str
    weights: np.ndarray
    bias: float

    def columns(self) -> list[int]:
        return [ALL_FEATURES.index(f) for f in VARIANTS[self.variant]]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x[:, self.columns()] @ self.weights + self.bias)))

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(VARIANTS[self.variant]),
            "weights": self.weights.round(6).tolist(),
            "bias": round(self.bias, 6),
        }


def fit(variant: str, x: np.ndarray, y: np.ndarray, *, c: float = 0.1) -> Ranker:
    """Fit one variant on rows of ``feature_matrix`` and binary labels (scikit-learn, offline only).

    The features are all on 0..1 scales, so they are not standardised; ``c`` (strong L2) keeps the
    weights from chasing a few hundred questions.
    """
    from sklearn.linear_model import LogisticRegression

    cols = [ALL_FEATURES.index(f) for f in VARIANTS[variant]]
    model = LogisticRegression(C=c, max_iter=2000).fit(x[:, cols], y)
    return Ranker(variant, model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def load_rankers(path: Path = WEIGHTS_PATH) -> dict[str, Ranker]:
    """The shipped variants, by name."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for variant, r in raw["variants"].items():
        if list(r["features"]) != list(VARIANTS[variant]):
            raise ValueError(f"{path}: variant {variant!r} was fitted on other features")
        out[variant] = Ranker(variant, np.asarray(r["weights"]), float(r["bias"]))
    return out


def save_rankers(rankers: dict[str, Ranker], path: Path = WEIGHTS_PATH, *, note: str = "") -> None:
    payload = {"note": note, "variants": {name: r.to_json() for name, r in rankers.items()}}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
