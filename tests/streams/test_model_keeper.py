"""The served model: hot swaps, integrity and sanity checks, and rollback on a hit-rate collapse."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.doubles import untrained_snapshot
from model.snapshot import Snapshot, stored_weights
from model.snapshot_delta import encode_delta
from state.catalog import Catalog
from streams.learning.model_keeper import ModelKeeper, RollbackRule, decode

snap = untrained_snapshot


def _plain_keeper(tmp_path: Path, start: Snapshot, **options: Any) -> tuple[ModelKeeper, list[tuple[str, str]]]:
    """A keeper with the default rollback rule, starting at ``start``, and the events it reports."""
    events: list[tuple[str, str]] = []
    k = ModelKeeper(
        Catalog(3600.0),
        3600.0,
        tmp_path,
        keep=3,
        rule=RollbackRule(),
        on_event=lambda outcome, reason: events.append((outcome, reason)),
        start=start,
        **options,
    )
    return k, events


@pytest.fixture
def keeper(tmp_path: Path):
    events: list[tuple[str, str]] = []
    now = [0.0]
    k = ModelKeeper(
        Catalog(3600.0),
        3600.0,
        tmp_path,
        keep=3,
        rule=RollbackRule(drop=0.5, min_trials=50, cooldown_s=30.0),
        on_event=lambda outcome, reason: events.append((outcome, reason)),
        clock=lambda: now[0],
        start=snap(1),
    )
    return k, events, now


def test_newer_snapshots_are_swapped_in_and_kept_on_disk(keeper, tmp_path):
    k, events, _ = keeper
    assert k.version == 1
    assert k.offer(snap(2).to_bytes()) == "accepted"
    assert k.version == 2 and events == [("accepted", "")]
    assert k.offer(snap(2).to_bytes()) == "stale"
    assert k.offer(snap(1).to_bytes()) == "stale"
    assert k.version == 2
    k.flush()
    assert any(tmp_path.iterdir())  # persisted for a restart


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "integrity"),  # truncated
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "integrity"),  # tampered
        (lambda b: b"garbage", "integrity"),
    ],
)
def test_damaged_snapshots_are_refused_and_the_current_model_kept(keeper, damage, reason):
    k, events, _ = keeper
    assert k.offer(damage(snap(5).to_bytes())) == reason
    assert k.version == 1 and events == [("refused", reason)]


def test_a_snapshot_of_the_wrong_shape_is_refused(keeper):
    k, _, _ = keeper
    bad = snap(3)
    weights = dict(bad.weights)
    name = next(n for n, w in weights.items() if w.ndim == 2)
    weights[name] = np.zeros((weights[name].shape[0], weights[name].shape[1] + 1), np.float32)
    wrong = Snapshot(version=3, config=bad.config, weights=weights)
    assert k.offer(wrong.to_bytes()) == "integrity"
    assert k.version == 1


def test_a_snapshot_scoring_non_finite_values_is_refused(keeper):
    """Finite weights pass verification, but ones this extreme overflow: the probe scores NaN."""
    k, events, _ = keeper
    base = snap(4)
    extreme = {
        name: np.where(np.indices(w.shape).sum(0) % 2 == 0, 3e38, -3e38).astype(np.float32) if w.ndim == 2 else w
        for name, w in base.weights.items()
    }
    with np.errstate(over="ignore", invalid="ignore"):
        assert k.offer(Snapshot(version=4, config=base.config, weights=extreme).to_bytes()) == "insane"
    assert k.version == 1 and events == [("refused", "insane")]
    assert k.offer(snap(5).to_bytes()) == "accepted"  # and a sane successor is taken


def test_a_collapsing_hit_rate_rolls_back_and_cools_down(keeper):
    k, events, now = keeper
    for n in range(200):
        k.record_hit(1, n % 5 == 0)  # version 1 hits 20% of the time
    assert k.offer(snap(2).to_bytes()) == "accepted"
    for n in range(49):
        k.record_hit(2, n % 50 == 0)  # ~2%: not judged before 50 trials
    assert k.version == 2
    k.record_hit(2, False)
    assert k.version == 1 and ("rolled_back", "hit_rate") in events
    assert k.offer(snap(3).to_bytes()) == "cooldown"  # a diverging trainer cannot flap the model
    now[0] = 31.0
    assert k.offer(snap(2).to_bytes()) == "cooldown"  # the rolled-back version never returns
    assert k.offer(snap(4).to_bytes()) == "accepted"


def test_a_healthy_version_is_not_rolled_back(keeper):
    k, events, _ = keeper
    for n in range(200):
        k.record_hit(1, n % 5 == 0)
    k.offer(snap(2).to_bytes())
    for n in range(500):
        k.record_hit(2, n % 6 == 0)  # 17% vs 20%: within the allowed drop
    assert k.version == 2 and ("rolled_back", "hit_rate") not in events


def test_a_version_too_far_ahead_is_refused_and_later_real_ones_still_taken(tmp_path: Path):
    k, events = _plain_keeper(tmp_path, snap(1), max_step=100)
    assert k.offer(snap(2**53).to_bytes()) == "version_jump"
    assert k.offer(snap(102).to_bytes()) == "version_jump"
    assert k.offer(snap(101).to_bytes()) == "accepted"
    assert k.offer(snap(102).to_bytes()) == "accepted"
    assert events == [("refused", "version_jump"), ("refused", "version_jump"), ("accepted", ""), ("accepted", "")]


def test_a_snapshot_announced_as_another_version_is_refused(keeper):
    k, _, _ = keeper
    assert k.offer(snap(3).to_bytes(), version=4) == "integrity"
    assert k.offer(snap(3).to_bytes(), version=3) == "accepted"


def test_each_refusal_reason_is_logged_once_and_always_counted(keeper, caplog):
    k, events, _ = keeper
    with caplog.at_level("WARNING", logger="streams.learning.model_keeper"):
        for _ in range(5):
            k.offer(b"garbage")
        k.refuse("bad_signature", "forged chunk")
        k.refuse("bad_signature", "forged chunk")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "refused a model snapshot (integrity)",
        "refused a model snapshot (bad_signature)",
    ]
    assert events.count(("refused", "integrity")) == 5 and events.count(("refused", "bad_signature")) == 2


def test_a_snapshot_trained_on_another_candidate_feature_layout_is_refused(keeper):
    k, events, _ = keeper
    config = snap(1).config
    other = config.with_(candidate_features=tuple(reversed(config.candidate_features)))
    assert k.offer(untrained_snapshot(2, config=other).to_bytes()) == "feature_layout"
    assert k.version == 1 and events == [("refused", "feature_layout")]
    assert k.offer(snap(3).to_bytes()) == "accepted"


def test_a_config_without_a_recorded_layout_reads_as_the_current_one():
    data = snap(1).config.to_dict()
    del data["candidate_features"]
    assert type(snap(1).config).from_dict(data).candidate_features == snap(1).config.candidate_features


def _trained(version: int) -> Snapshot:
    """Version ``version`` of a model whose item rows 1..version moved since version 1."""
    start = snap(1)
    weights = {name: w.copy() for name, w in start.weights.items()}
    weights["item_table"][1 : version + 1] += 0.25
    return Snapshot(version=version, config=start.config, weights=weights, extra={"trained_until": 100.0 + version})


def _delta(version: int, base: int) -> bytes:
    return encode_delta(_trained(version), stored_weights(_trained(base).weights, "float16"), base, "float16")


def _take(k: ModelKeeper, version: int, base: int | None) -> str | None:
    """What the engine does with a published full snapshot (``base`` None) or delta."""
    if base is None:
        return k.consider(decode(_trained(version).to_bytes(dtype="float16")), version)
    held = k.base_for(base, version)
    if held is None:
        return None
    data = _delta(version, base)
    return k.consider(decode(data, held), version, (base, data))


def test_deltas_apply_to_the_full_snapshot_they_name_and_are_stored_as_received(keeper, tmp_path):
    k, events, _ = keeper
    assert [_take(k, v, b) for v, b in ((2, None), (3, 2), (4, 2))] == ["accepted"] * 3
    assert k.version == 4 and events == [("accepted", "")] * 3
    full = Snapshot.from_bytes(_trained(4).to_bytes(dtype="float16"))
    assert all(k.snapshot.weights[n].tobytes() == w.tobytes() for n, w in full.weights.items())
    k.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "delta-000000000003-on-000000000002.sgd",
        "delta-000000000004-on-000000000002.sgd",
        "snapshot-000000000002.sgs",
    ]
    for version in (2, 3):  # an older version loads again, bit for bit what the full snapshot decodes to
        again, full = k.stored(version), Snapshot.from_bytes(_trained(version).to_bytes(dtype="float16"))
        assert all(again.weights[n].tobytes() == w.tobytes() for n, w in full.weights.items())
        assert k.serving(again).version == version and k.version == 4


def test_a_delta_without_its_base_is_refused_until_the_next_full_snapshot(keeper, caplog):
    k, events, _ = keeper
    with caplog.at_level("WARNING", logger="streams.learning.model_keeper"):
        assert [_take(k, v, 2) for v in (3, 4)] == [None, None]  # the full version 2 was missed
    assert k.version == 1 and events == [("refused", "no_base")] * 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["refused a model snapshot (no_base)"]
    assert [_take(k, v, b) for v, b in ((5, None), (6, 5))] == ["accepted", "accepted"]
    assert k.version == 6


def test_a_restarted_worker_takes_deltas_against_a_full_snapshot_older_than_its_model(tmp_path):
    """Read from the topic's start: the newest full snapshot is older than the one on disk."""
    k, events = _plain_keeper(tmp_path, Snapshot.from_bytes(_trained(5).to_bytes(dtype="float16")))
    assert _take(k, 3, None) == "stale"
    assert _take(k, 4, 3) is None  # a delta older than the served model: nothing to do, no refusal
    assert _take(k, 7, 3) == "accepted" and k.version == 7 and events == [("accepted", "")]


def test_the_shops_share_of_new_items_stays_across_swaps(tmp_path: Path):
    k = ModelKeeper(Catalog(3600.0), 3600.0, tmp_path, keep=3, rule=RollbackRule(), start=snap(1), new_share=0.0)
    assert k.current.new_share == 0.0
    assert k.offer(snap(2).to_bytes()) == "accepted"
    assert k.version == 2 and k.current.new_share == 0.0
