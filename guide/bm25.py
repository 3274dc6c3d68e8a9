"""Okapi BM25 over small token lists, scored on the fly.

The guide searches one item's few hundred sentences (or a few thousand catalog fields) at a time,
so there is no persistent inverted index: document frequencies are counted over the candidate set
at query time, for the query's terms only. That keeps memory at the tokens themselves and makes
adding or trimming sentences free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

K1 = 1.2
B = 0.75


def bm25_scores(query: Sequence[str], docs: Sequence[Sequence[str]], *, k1: float = K1, b: float = B) -> list[float]:
    """BM25 score of every document in ``docs`` for ``query`` (terms counted once each)."""
    n = len(docs)
    if n == 0:
        return []
    terms = list(dict.fromkeys(query))
    if not terms:
        return [0.0] * n
    lengths = [len(d) for d in docs]
    avgdl = (sum(lengths) / n) or 1.0
    sets = [set(d) for d in docs]
    idf = {}
    for t in terms:
        df = sum(1 for s in sets if t in s)
        if df:
            idf[t] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    scores = []
    for doc, dl, s in zip(docs, lengths, sets, strict=True):
        total = 0.0
        norm = k1 * (1.0 - b + b * dl / avgdl)
        for t, w in idf.items():
            if t in s:
                tf = doc.count(t)
                total += w * tf * (k1 + 1.0) / (tf + norm)
        scores.append(total)
    return scores
