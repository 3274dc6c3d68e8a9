"""Okapi BM25 over a small candidate set, with the term counts precomputed.

The guide scores one item's few hundred sentences (or those of a few items) per question.
``Bm25Index`` holds each term's postings (document rows and term counts) as numpy arrays, built once
per candidate set and kept while the set is unchanged, so a question costs one vectorised update per
query term instead of a Python loop over documents. Document frequencies and the mean length are
those of the set itself, as in scoring on the fly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

K1 = 1.2
B = 0.75


class Bm25Index:
    """Postings of a fixed list of token lists; ``concat`` joins indexes as if built from all docs.

    A joined index merges a term's postings from its parts only when a query asks for that term.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        postings: dict[str, tuple[np.ndarray, np.ndarray]],
        parts: Sequence[tuple[int, Bm25Index]] = (),
    ) -> None:
        self.lengths = lengths
        self._postings = postings
        self._parts = parts
        self._merged: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]]) -> Bm25Index:
        rows: dict[str, list[int]] = {}
        counts: dict[str, list[int]] = {}
        for i, doc in enumerate(docs):
            for term, tf in Counter(doc).items():
                rows.setdefault(term, []).append(i)
                counts.setdefault(term, []).append(tf)
        postings = {t: (np.asarray(rows[t], dtype=np.int64), np.asarray(counts[t], dtype=np.float64)) for t in rows}
        return cls(np.asarray([len(d) for d in docs], dtype=np.float64), postings)

    @classmethod
    def concat(cls, parts: Sequence[Bm25Index]) -> Bm25Index:
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        lengths = np.concatenate([p.lengths for p in parts])
        return cls(lengths, {}, [(int(o), p) for o, p in zip(offsets, parts, strict=True)])

    def posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows of the documents holding ``term`` and its count in each; None when none does."""
        if not self._parts:
            return self._postings.get(term)
        if term not in self._merged:
            found = [(o, p) for o, p in ((o, part.posting(term)) for o, part in self._parts) if p is not None]
            self._merged[term] = (
                (np.concatenate([p[0] + o for o, p in found]), np.concatenate([p[1] for _, p in found]))
                if found
                else None
            )
        return self._merged[term]

    def __len__(self) -> int:
        return len(self.lengths)

    def scores(self, query: Sequence[str], *, k1: float = K1, b: float = B) -> np.ndarray:
        """BM25 score of every document for ``query`` (terms counted once each)."""
        n = len(self.lengths)
        total = np.zeros(n, dtype=np.float64)
        if n == 0:
            return total
        avgdl = (float(self.lengths.sum()) / n) or 1.0
        norm = k1 * (1.0 - b + b * self.lengths / avgdl)
        for t in dict.fromkeys(query):
            posting = self.posting(t)
            if posting is None:
                continue
            rows, tf = posting
            idf = math.log(1.0 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            total[rows] += idf * tf * (k1 + 1.0) / (tf + norm[rows])
        return total

    def overlap(self, query: Sequence[str]) -> np.ndarray:
        """Share of the query's distinct terms each document contains."""
        terms = set(query)
        hits = np.zeros(len(self.lengths), dtype=np.float64)
        if not terms:
            return hits
        for t in terms:
            posting = self.posting(t)
            if posting is not None:
                hits[posting[0]] += 1.0
        return hits / len(terms)
