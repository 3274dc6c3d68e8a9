from __future__ import annotations

import numpy as np

from model.offline.baselines import TfidfLogReg
from model.offline.datasets import Interaction
from model.offline.evaluate import baseline_recommenders, classification_figures, prequential, replay_catalog
from state.user import UserState


def _events() -> list[Interaction]:
    rng = np.random.default_rng(0)
    out = []
    for t in range(600):
        user = f"u{rng.integers(20)}"
        item = f"i{rng.integers(15)}" if rng.random() < 0.7 else f"j{rng.integers(200)}"
        out.append(Interaction(user, item, f"c{item[-1]}", "click", 1000.0 + t))
    return out


def test_prequential_scores_every_method_on_the_same_positives() -> None:
    catalog, clock = replay_catalog(3600.0)
    methods = baseline_recommenders(catalog, 3600.0)
    result = prequential(
        _events(),
        methods,
        catalog,
        clock,
        is_positive=lambda e: True,
        interest_half_life_s=3600.0,
        popularity_half_life_s=3600.0,
        window=100,
        tuned_until=400,
    )
    figures = result.results()
    assert result.n == 600 and set(figures) == {m.name for m in methods}
    assert len(figures) == 7
    assert figures["popularity"]["hit_rate@10"] > 0.3  # 15 hot items
    for f in figures.values():
        assert 0.0 <= f["ndcg@10"] <= f["hit_rate@10"] <= 1.0
    assert len(result.scores["repeat"].curve) == 6
    assert all(s.n == 200 for s in result.after.values())  # the positives after the tuning prefix


def test_unseen_variants_never_recommend_the_users_history() -> None:
    catalog, _clock = replay_catalog(3600.0)
    methods = {m.name: m for m in baseline_recommenders(catalog, 3600.0)}
    users: dict[str, UserState] = {}
    for e in _events():
        user = users.setdefault(e.user_id, UserState())
        for m in methods.values():
            m.observe(user, e.item_id, e.action, e.ts, e.category)
        user.apply_click(e.item_id, e.action, e.ts, e.category, 3600.0)
    for user in users.values():
        seen = {r.item_id for r in user.recent}
        for name in ("covisitation_unseen", "popularity_unseen"):
            assert not seen & {i for i, _ in methods[name].recommend(user, 2000.0, 10)}
    assert methods["cooccurrence"].recommend(user, 2000.0, 10)


def test_classification_figures() -> None:
    labels = np.array([1, 1, 0, 0])
    f = classification_figures(labels, np.array([0.9, 0.2, 0.1, 0.4]))
    assert f["accuracy"] == 0.75
    assert abs(f["macro_f1"] - (2 / 3 + 0.8) / 2) < 1e-9


def test_tfidf_baseline_learns_both_languages() -> None:
    texts = ["很好 满意", "太差 失望", "great love", "bad awful"] * 10
    labels = [1, 0, 1, 0] * 10
    probs = TfidfLogReg().fit(texts, labels).predict_proba(["很好", "awful"])
    assert probs[0] > 0.5 > probs[1]
