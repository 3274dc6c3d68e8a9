"""BM25 with precomputed postings: the textbook formula, and joined indexes score as one."""

import math

import numpy as np
import pytest

from guide.bm25 import K1, B, Bm25Index

DOCS = [["battery", "lasts", "long"], ["battery", "battery", "dies"], ["runs", "small"], []]


def textbook(query: list[str], docs: list[list[str]]) -> list[float]:
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    out = []
    for doc in docs:
        total = 0.0
        for t in dict.fromkeys(query):
            df = sum(1 for d in docs if t in d)
            if df and t in doc:
                tf = doc.count(t)
                idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
                total += idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len(doc) / avgdl))
        out.append(total)
    return out


@pytest.mark.parametrize("query", [["battery"], ["battery", "dies", "battery"], ["small", "long"], ["nothing"], []])
def test_scores_are_the_textbook_formula(query):
    assert Bm25Index.build(DOCS).scores(query).tolist() == pytest.approx(textbook(query, DOCS), abs=1e-12)


def test_joined_indexes_score_and_overlap_as_one_built_from_all_documents():
    whole = Bm25Index.build(DOCS)
    joined = Bm25Index.concat([Bm25Index.build(DOCS[:1]), Bm25Index.build(DOCS[1:3]), Bm25Index.build(DOCS[3:])])
    query = ["battery", "small", "dies"]
    assert np.array_equal(joined.scores(query), whole.scores(query))
    assert np.array_equal(joined.overlap(query), whole.overlap(query))
    assert whole.overlap(query).tolist() == [1 / 3, 2 / 3, 1 / 3, 0.0]
